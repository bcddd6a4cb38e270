"""The provider adapter contract (``ProviderAdapter``) and the shapes every adapter shares.

An adapter is pure translation between the gateway's lingua franca (OpenAI's request and
answer shapes) and one provider protocol: it builds the upstream request for a ``Call``, parses
a whole answer into the OpenAI shape with its ``Usage``, makes a ``Relay`` that turns the
upstream's stream into OpenAI-shape SSE events, extracts an error message (scrubbed of the
key) and classifies a status with its rate-limit headers into a ``Verdict``. Adapters do no
I/O and know nothing of the HTTP server; the registry (``registry.py``) is the only way in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson

from ..core.call import Call
from ..core.request import UpstreamRequest
from ..core.targets import ProviderKey, Target
from ..core.usage import Answer, Usage

# What an upstream answer means for routing (``Verdict.kind``).
OK = "ok"  # 2xx
RATE_LIMITED = "rate_limited"  # 429: cool the key down, try another
KEY_REJECTED = "key_rejected"  # 401/403: the key is dead, quarantine it
SERVER_ERROR = "server_error"  # 5xx, connect error, timeout: try another key/target
CLIENT_ERROR = "client_error"  # other 4xx: the request itself is wrong, do not retry


@dataclass(frozen=True, slots=True)
class Verdict:
    """An upstream status read with its headers: what it means for the key that answered."""

    kind: str  # OK | RATE_LIMITED | KEY_REJECTED | CLIENT_ERROR | SERVER_ERROR
    retry_after_s: float | None  # how long the key should rest (rate limited only); None: not said
    headroom: Mapping[str, str]  # what the key has left, as x-ratelimit-* headers (what KeyPool reads)


class Relay(Protocol):
    """Fed the upstream's stream bytes as they come; yields OpenAI-shape SSE events (bytes).

    ``done`` turns true once the upstream said its stream is complete; ``final_usage()`` is the
    usage to account (counted locally when the upstream reported none). What it holds does not
    grow with the answer: one unfinished event (its ``core.sse.SSEDecoder``) and counts; ``feed``
    raises ``core.sse.EventTooLarge`` for an event it will not wait the end of.
    """

    done: bool

    def feed(self, chunk: bytes) -> list[bytes]: ...

    def final_usage(self) -> Usage: ...


class ProviderAdapter(Protocol):
    """One provider protocol (see the module docstring). Implementations hold no per-request state.

    Same-dialect pass-through: when ``call.native_body`` is set and ``call.dialect`` names this
    adapter's protocol (``"anthropic"``, ``"gemini"``), the client spoke this protocol itself:
    ``build_request`` sends ``call.native_body`` (the model replaced by ``target.model``, in the
    body or the URL as the protocol puts it; ``stream`` as ``call.stream`` says), ``parse_response``
    returns the upstream's own JSON as ``Answer.data`` (its usage read for accounting), and
    ``stream_relay``'s ``feed`` yields the upstream's own SSE events unchanged (usage read for
    ``final_usage``; ``done`` set at the protocol's last event). The inbound dialect's renderer
    writes them as they are.
    """

    def build_request(self, target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
        """The upstream request for ``call`` on ``target`` with ``key`` (None for keyless providers)."""
        ...

    def parse_response(self, raw: bytes, call: Call) -> Answer:
        """A whole 2xx answer in the OpenAI shape (``model`` = ``call.model``); ValueError if unreadable."""
        ...

    def stream_relay(self, call: Call) -> Relay:
        """A fresh relay for one streamed answer to ``call``."""
        ...

    def error_message(self, body: bytes, secret: str | None) -> str:
        """The upstream's own message in an error body, with ``secret`` (and anything key-like) scrubbed."""
        ...

    def classify(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> Verdict:
        """What ``status`` with these (raw) headers means: see ``Verdict``. ``body`` is the start of an
        error answer (empty for a 2xx), for protocols that say more there (Gemini's RetryInfo, API_KEY_INVALID)."""
        ...


def classify_status(status: int) -> str:
    if status < 300:
        return OK
    if status == 429:
        return RATE_LIMITED
    if status in (401, 403):
        return KEY_REJECTED
    if status >= 500 or status in (408, 409):
        return SERVER_ERROR
    return CLIENT_ERROR


def error_message_from(body: bytes, secret: str | None) -> str:
    """The upstream's own error message, if any, with the key scrubbed out of it."""
    message = ""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                message = str(err.get("message") or "")
            elif isinstance(err, str):
                message = err
    except orjson.JSONDecodeError:
        message = body[:300].decode("utf-8", "replace")
    return scrub(message, secret)


def scrub(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    return re.sub(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{6,}", "[redacted]", text)


