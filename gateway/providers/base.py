"""Shapes shared by the provider adapters: usage, classified upstream failures, stream relays."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from dataclasses import dataclass
from typing import Mapping

import orjson


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    exact: bool = True  # False when counted locally because the upstream gave none

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# What a failed upstream answer means for routing.
RATE_LIMITED = "rate_limited"  # 429: cool the key down, try another
KEY_REJECTED = "key_rejected"  # 401/403: the key is dead, quarantine it
SERVER_ERROR = "server_error"  # 5xx, connect error, timeout: try another key/target
CLIENT_ERROR = "client_error"  # other 4xx: the request itself is wrong, do not retry


def classify_status(status: int) -> str:
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
        when = when.replace(tzinfo=datetime.timezone.utc)
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
    resets = [parse_duration(headers[h]) for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
              if headers.get(h)]
    resets = [r for r in resets if r is not None]
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


def sse_error_event(message: str, type_: str = "provider_error", code: str = "stream_interrupted") -> bytes:
    return b"data: " + orjson.dumps({"error": {"message": message, "type": type_, "code": code}}) + b"\n\n"


def estimate_tokens(text: str) -> int:
    """A local estimate (about 4 characters a token) for upstreams that report no usage."""
    return (len(text) + 3) // 4 if text else 0


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
