"""The provider adapter contract (``ProviderAdapter``) and the shapes every adapter shares.

An adapter is pure translation between the gateway's lingua franca (OpenAI's request and
answer shapes) and one provider protocol: it builds the upstream request for a ``Call``, parses
a whole answer into the OpenAI shape with its ``Usage``, makes a ``Relay`` that turns the
upstream's stream into OpenAI-shape SSE events, extracts an error message (scrubbed of the
key) and classifies a status with its rate-limit headers into a ``Verdict``. Adapters do no
I/O and know nothing of the HTTP server; the registry (``registry.py``) is the only way in.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:  # the snapshot imports the registry, which imports the adapters: types only here
    from ..config.snapshot import ProviderKey, Target
    from ..upstream import UpstreamRequest


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    exact: bool = True  # False when counted locally because the upstream gave none

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# What the pipeline asks of an upstream (``Call.operation``).
CHAT = "chat"  # POST /chat/completions, streamed or whole
COMPLETIONS = "completions"  # POST /completions, streamed or whole
EMBEDDINGS = "embeddings"  # POST /embeddings, whole
PASSTHROUGH = "passthrough"  # ``Call.path`` under the provider's root, body as given (only the model rewritten)
# The rest of OpenAI's surface (issue 8 item 5): each also names the endpoint family a provider may
# serve (``pipeline/surface.py`` refuses a provider that cannot, with a 400 naming it).
IMAGES = "images"  # POST /images/generations (JSON in, JSON out)
AUDIO = "audio"  # POST /audio/transcriptions|translations (``Call.upload``); /audio/speech (binary streamed back)
MODERATIONS = "moderations"  # POST /moderations
RESPONSES = "responses"  # POST /responses, whole or streamed (``response.*`` events)
FILES = "files"  # stateful: ``Call.method`` and ``Call.path`` name the object (see pipeline/affinity.py)
ASSISTANTS = "assistants"
THREADS = "threads"


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the pipeline hands it to an adapter, in OpenAI terms."""

    operation: str  # CHAT | COMPLETIONS | EMBEDDINGS | PASSTHROUGH
    path: str  # the OpenAI path ("/chat/completions"); for PASSTHROUGH the path under the provider's root
    body: dict[str, Any]  # OpenAI-shape request body (never mutated)
    model: str  # what the client asked for: answers carry it back
    stream: bool = False
    wants_usage: bool = False  # the client asked for a usage chunk (stream_options.include_usage)
    dialect: str = "openai"  # the inbound dialect the body came in (see pipeline/core.py: pass-through)
    # the rest of the surface (defaults: a JSON POST); adapters that serve only chat may ignore them
    method: str = "POST"  # GET / DELETE for the stateful endpoints (``body`` is then empty)
    query: str = ""  # the query string passed on as it came (list endpoints' limit, after, order)
    upload: Upload | None = None  # a non-JSON body (multipart) streamed through instead of ``body``
    headers: tuple[tuple[str, str], ...] = ()  # client headers passed on (OpenAI-Beta)
    # Same-dialect pass-through (issue 8, item 6): for a dialect other than OpenAI, ``body`` is the
    # request translated into OpenAI's shape (what every other adapter and the estimates read) and
    # ``native_body`` the body exactly as the client sent it. An adapter whose protocol equals
    # ``dialect`` sends ``native_body`` (only its model replaced by the target's) and hands the
    # answer and stream back untranslated: see ``ProviderAdapter``.
    native_body: dict[str, Any] | None = None


class Upload(Protocol):
    """A request body passed through as bytes (a multipart upload): one fresh pass per attempt."""

    content_type: str
    length: int | None  # bytes, when known (sent as Content-Length)

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass(slots=True)
class Answer:
    """A whole upstream answer in the OpenAI shape, with what it used."""

    data: dict[str, Any]
    usage: Usage


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
    headroom: Mapping[str, str]  # what the key has left, as x-ratelimit-* headers (what KeyBoard reads)


# The largest SSE event a relay waits for the end of: its only buffer that the upstream sizes.
MAX_EVENT_BYTES = 32 << 20


class EventTooLarge(ValueError):
    """An upstream event passed ``MAX_EVENT_BYTES`` before it ended (the stream is given up)."""


def unfinished(rest: bytes) -> bytes:
    """``rest``, the start of an event not complete yet, for a relay to keep until its end comes;
    ``EventTooLarge`` once it passes ``MAX_EVENT_BYTES``."""
    if len(rest) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"an event passed {MAX_EVENT_BYTES >> 20} MB before it ended")
    return rest


class Relay(Protocol):
    """Fed the upstream's stream bytes as they come; yields OpenAI-shape SSE events (bytes).

    ``done`` turns true once the upstream said its stream is complete; ``final_usage()`` is the
    usage to account (counted locally when the upstream reported none). What it holds does not
    grow with the answer: an unfinished event (``unfinished``) and counts; ``feed`` raises
    ``EventTooLarge`` for an event it will not wait the end of.
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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float | None:
    """A plain, finite number of seconds (negative counts as 0); None if ``text`` is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


def parse_duration(text: str) -> float | None:
    """``"6m0s"``, ``"1.5s"``, ``"20ms"`` or plain seconds -> seconds (x-ratelimit-reset-* style)."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return _seconds(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _http_date_seconds(value: str, now: float | None) -> float | None:
    """Seconds from now until an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``); None if not one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" and obsolete forms: HTTP dates are always UTC
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), else ``retry-after-ms``, else the
    reset headers.

    ``now`` is wall-clock time (for HTTP dates). Of ``x-ratelimit-reset-requests`` and
    ``-tokens`` the longer wins: either limit may be the one that was hit.
    """
    value = (headers.get("retry-after") or "").strip()
    if value:
        seconds = _seconds(value) if _NUMBER.fullmatch(value) else _http_date_seconds(value, now)
        if seconds is not None:
            return seconds
    millis = (headers.get("retry-after-ms") or "").strip()
    if millis and _NUMBER.fullmatch(millis):
        seconds = _seconds(millis)
        if seconds is not None:
            return seconds / 1000.0
    parsed = (parse_duration(headers[h]) for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
              if headers.get(h))
    resets = [r for r in parsed if r is not None]
    return max(resets) if resets else None


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


def estimate_tokens(text: str) -> int:
    """A local estimate (about 4 characters a token) for upstreams that report no usage."""
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    """``estimate_tokens`` of a text ``chars`` characters long: a stream's relay counts the
    characters as they pass instead of keeping the text (which would grow with the answer)."""
    return (chars + 3) // 4 if chars > 0 else 0


def estimate_prompt_tokens(messages: object) -> int:
    total = 0
    if isinstance(messages, list):
        for message in messages:
            total += 4
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, str):
                    total += estimate_tokens(content)
                elif isinstance(content, list):
                    for part in content:
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            total += estimate_tokens(part["text"])
    return total + 2
