"""Anthropic's rate-limit headers, read into the ``x-ratelimit-*`` terms the key pool understands.

``anthropic-ratelimit-requests-remaining`` / ``-reset`` and ``anthropic-ratelimit-tokens-remaining``
/ ``-reset`` (the most restrictive token limit in effect; ``input-tokens`` stand in where it is
absent) become ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*`` (seconds from now: Anthropic
gives the reset as an RFC 3339 time); ``retry-after`` is kept as it is.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable

_PREFIXES = (b"anthropic-ratelimit-", b"retry-after", b"x-ratelimit-")
# Anthropic's limit -> the name KeyPool reads it under (first found wins)
_LIMITS = (("requests", "requests"), ("tokens", "tokens"), ("input-tokens", "tokens"))


def reset_seconds(value: str, now: float) -> float | None:
    """Seconds from ``now`` (wall clock) until an RFC 3339 time; None if ``value`` is not one."""
    try:
        when = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def headroom(raw: Iterable[tuple[bytes, bytes]], now: float | None = None) -> dict[str, str]:
    """The rate-limit headers of an answer, in ``x-ratelimit-*`` terms (see the module docstring)."""
    found: dict[str, str] = {}
    for name, value in raw:
        lower = name.lower()
        if lower.startswith(_PREFIXES):
            found[lower.decode("latin-1")] = value.decode("latin-1")
    if not any(name.startswith("anthropic-") for name in found):
        return found
    wall = time.time() if now is None else now
    for limit, kind in _LIMITS:
        remaining = found.get(f"anthropic-ratelimit-{limit}-remaining")
        if remaining is None or f"x-ratelimit-remaining-{kind}" in found:
            continue
        found[f"x-ratelimit-remaining-{kind}"] = remaining.strip()
        reset = reset_seconds(found.get(f"anthropic-ratelimit-{limit}-reset", ""), wall)
        if reset is not None:
            found[f"x-ratelimit-reset-{kind}"] = f"{reset:.3f}"
    return found
