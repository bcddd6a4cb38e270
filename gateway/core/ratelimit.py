"""Rate-limit headers read into seconds: ``Retry-After`` (seconds or an HTTP date),
``retry-after-ms``, and the ``x-ratelimit-reset-*`` durations (``6m0s``, ``1.5s``, ``20ms``)."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from collections.abc import Mapping

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
