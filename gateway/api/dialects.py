"""What the inbound dialects share: errors rendered in each dialect's shape (the one place that
maps a ``GatewayError`` to a body), and the reading of the pipeline's events they translate.

Dialect names equal the protocol names of the providers that speak them (``anthropic``,
``gemini``), which is how the pipeline tells a same-dialect pass-through (``Exchange.native``).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..core.sse import data_of, one_data_event
from ..core.tokens import estimate_prompt_tokens
from ..errors import GatewayError
from .anthropic.errors import error_body as anthropic_error
from .google.errors import error_body as google_error

OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gemini"  # Google's generateContent dialect


def error_body(dialect: str, exc: GatewayError) -> bytes:
    """``exc`` as the body a client of ``dialect`` expects (OpenAI's shape for any other), with the
    error's own details (a guardrail's name and the entity it found) in each shape."""
    if dialect == ANTHROPIC:
        return anthropic_error(exc.status, exc.message, exc.details())
    if dialect == GEMINI:
        details = exc.details()
        details.pop("code", None)  # Google's shape carries the code as the ErrorInfo's reason
        return google_error(exc.status, exc.message, exc.code, details)
    return exc.to_body()


# the status an error event the pipeline made stands for, by its code (others: the stream broke off)
STREAM_ERROR_STATUS = {"upstream_timeout": 504, "guardrail_blocked": 400}


def event_details(error: dict[str, Any]) -> dict[str, str]:
    """The details a pipeline error event carries beside its message (a guardrail's block: its code,
    guard and entity), for a dialect's own error event."""
    if error.get("code") != "guardrail_blocked":
        return {}
    return {name: str(error[name]) for name in ("code", "guardrail", "entity") if name in error}


def as_dict(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for reading what an upstream sent)."""
    return value if isinstance(value, dict) else {}


REASONING_FIELDS = ("reasoning_content", "reasoning")  # where OpenAI-compatible servers put reasoning text


def reasoning_of(message: dict[str, Any]) -> str:
    """An OpenAI-shape message's (or delta's) reasoning text, "" when it has none."""
    for name in REASONING_FIELDS:
        text = message.get(name)
        if isinstance(text, str) and text:
            return text
    return ""


def estimate_input(chat: dict[str, Any]) -> int:
    """The gateway's count of a chat body's input tokens: its messages (as the limits count them) and
    tools (about four characters a token)."""
    tools = chat.get("tools")
    return estimate_prompt_tokens(chat.get("messages")) + ((len(orjson.dumps(tools)) + 3) // 4 if tools else 0)


def pipeline_error(data: bytes) -> dict[str, Any] | None:
    """The error of an error event the pipeline made itself (OpenAI's shape: ``error.type``), else None."""
    if not data.startswith(b'{"error"'):
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) and "type" in error else None



class ChunkTranslator:
    """Turns the pipeline's OpenAI-shape SSE items into a dialect's events: ``[DONE]`` and the
    pipeline's own error events are handled here once; a dialect writes ``_chunk``, ``_error`` and
    ``finish``."""

    ended = False

    def feed(self, item: bytes) -> list[bytes]:
        out: list[bytes] = []
        for data in (item[6:-2],) if one_data_event(item) else data_of(item):
            if data == b"[DONE]":
                out += self.finish()
                continue
            error = pipeline_error(data)
            if error is not None:
                self.ended = True
                out.append(self._error(error))
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                out += self._chunk(chunk)
        return out

    def finish(self) -> list[bytes]:
        raise NotImplementedError

    def _error(self, error: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError
