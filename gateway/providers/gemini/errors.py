"""Gemini errors: ``{"error": {"code", "message", "status", "details"}}`` (sometimes inside a one-item list).

A 429 ``RESOURCE_EXHAUSTED`` cools the key for ``RetryInfo.retryDelay`` (``"12s"``) when the body gives
one (a ``Retry-After`` header, if ever sent, wins). A 400 whose ``ErrorInfo.reason`` is ``API_KEY_INVALID``
(a key that is wrong or expired) is the key's fault, not the request's: it is quarantined like a 401/403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from ...core.ratelimit import parse_duration, retry_after_seconds
from ..base import CLIENT_ERROR, KEY_REJECTED, OK, RATE_LIMITED, Verdict, classify_status, scrub
from ..openai import limit_headers

_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")


def error_of(data: Any) -> dict[str, Any] | None:
    """The ``error`` object of a parsed Gemini error body (or of its first item), if it has one."""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _parsed_error(body: bytes) -> dict[str, Any] | None:
    try:
        return error_of(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def retry_delay(error: dict[str, Any]) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` ("12s", "1.5s") in seconds, if the error carries one."""
    for detail in _details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo") and isinstance(detail.get("retryDelay"), str):
            return parse_duration(detail["retryDelay"])
    return None


def key_invalid(error: dict[str, Any]) -> bool:
    """The error says the API key itself is bad (``ErrorInfo.reason: API_KEY_INVALID``)."""
    if any(detail.get("reason") in _KEY_REASONS for detail in _details(error)):
        return True
    return str(error.get("message", "")).startswith(("API key not valid", "API key expired"))


def scrub_key(text: str, secret: str | None) -> str:
    return _GOOGLE_KEY.sub("[redacted]", scrub(text, secret))


def error_message(body: bytes, secret: str | None) -> str:
    error = _parsed_error(body)
    if error is None:
        return scrub_key(body[:300].decode("utf-8", "replace"), secret)
    message = str(error.get("message") or "")
    status = error.get("status")
    if isinstance(status, str) and status and status not in message:
        message = f"{message} ({status})" if message else status
    return scrub_key(message, secret)


def classify(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> Verdict:
    hints = limit_headers(headers)
    if status < 300:
        return Verdict(OK, None, hints)
    kind = classify_status(status)
    if kind not in (CLIENT_ERROR, RATE_LIMITED):
        return Verdict(kind, None, hints)
    error = _parsed_error(body) or {}
    if kind == CLIENT_ERROR:
        return Verdict(KEY_REJECTED if key_invalid(error) else CLIENT_ERROR, None, hints)
    wait = retry_after_seconds(hints)
    return Verdict(RATE_LIMITED, wait if wait is not None else retry_delay(error), hints)
