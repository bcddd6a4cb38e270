"""Anthropic Messages requests: checked, and translated into an OpenAI chat body.

The body is checked only for what Anthropic itself refuses (no model, no positive ``max_tokens``,
no messages, a role other than user, assistant or system, content that is neither a string nor
blocks, a malformed tool or tool choice): anything else is valid input, passed untouched to an
Anthropic provider (``Call.native_body``, with the query string and the ``anthropic-*`` headers)
and translated for the others: the conversation by ``conversation.py``, the settings by
``options.py``; what has no place in OpenAI's shape is named in ``Call.dropped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...core.call import CHAT, PASSTHROUGH, Call
from ...errors import InvalidRequest
from ..openai.parse import model_of
from .conversation import Notes, conversation
from .options import chat_options

ANTHROPIC = "anthropic"  # the dialect's name: equal to the Anthropic providers' protocol (pass-through)
MESSAGES = "messages"  # the endpoint's name in the access log
COUNT_TOKENS = "count_tokens"
COUNT_PATH = "/messages/count_tokens"  # under an Anthropic provider's root
# client headers an Anthropic provider gets as they came (besides every ``anthropic-*`` one)
_PASSED = frozenset({"x-app", "x-claude-code-session-id"})


def parse_messages(body: dict[str, Any], query: str = "", headers: Iterable[tuple[str, str]] = ()) -> Call:
    """The checked body as a ``Call`` (OpenAI body, Anthropic body kept as ``native_body``); 400 if wrong."""
    model = model_of(body)
    max_tokens = body.get("max_tokens")
    if not _positive_int(max_tokens):
        raise InvalidRequest("'max_tokens' is required and must be a positive integer.", param="max_tokens")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    notes = Notes()
    chat = chat_body(body, model, notes)
    chat["max_tokens"] = max_tokens
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    # wants_usage: the usage chunk is what message_delta's usage is made of
    return Call(CHAT, "/chat/completions", chat, model, stream=stream is True, wants_usage=True, dialect=ANTHROPIC,
                query=query, headers=passed_headers(headers), native_body=body, dropped=tuple(notes.dropped),
                translated=True)


def parse_count(body: dict[str, Any], query: str = "", headers: Iterable[tuple[str, str]] = ()) -> Call:
    """A ``count_tokens`` body as a ``Call``: passed through to ``COUNT_PATH`` of an Anthropic provider."""
    model = model_of(body)
    chat = chat_body(body, model, Notes())
    chat["max_tokens"] = 1  # a count produces no output: the budget holds for no more
    return Call(PASSTHROUGH, COUNT_PATH, chat, model, dialect=ANTHROPIC, query=query, headers=passed_headers(headers),
                native_body=body)


def chat_body(body: dict[str, Any], model: str, notes: Notes) -> dict[str, Any]:
    """The OpenAI chat body for an Anthropic body (without ``max_tokens`` and streaming)."""
    out: dict[str, Any] = {"model": model, "messages": conversation(body, notes)}
    chat_options(body, out, notes)
    return out


def passed_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The request headers an Anthropic provider gets as they came: ``anthropic-version``,
    ``anthropic-beta`` (the bodies that use a beta feature are invalid without it) and the rest."""
    return tuple((name, value) for name, value in headers
                 if (name.startswith("anthropic-") or name in _PASSED) and not name.startswith("anthropic-ratelimit"))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
