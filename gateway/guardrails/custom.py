"""The ``regex`` guard: the operator's own patterns, each reporting its name as the entity.

Each pattern runs over the text in windows of ``WINDOW`` characters that overlap by the guard's
``max_match_chars``, so the work one pattern can cause is bounded by the window, not by the
size of the request (Python's ``re`` has no timeout; ``patterns.py`` refuses the shapes that
backtrack exponentially). A match longer than ``max_match_chars`` may be missed where two
windows or two chunks of a stream meet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .base import SEPARATOR, Match, Tails, TextView
from .patterns import check_pattern, max_width, tail_class

WINDOW = 8192


class _Pattern:
    __slots__ = ("name", "compiled", "tail", "limit")

    def __init__(self, name: str, pattern: str, ignore_case: bool, max_match: int) -> None:
        self.name = name
        self.compiled = check_pattern(pattern, ignore_case)
        self.limit = max(1, min(max_width(pattern), max_match))
        chars = tail_class(pattern)
        flags = re.IGNORECASE if ignore_case else 0
        # matched on the reversed end of a stream's text: how long its trailing run of match characters is
        self.tail = re.compile(f"[{chars}]{{0,{self.limit}}}", flags) if chars else None

    def hold(self, text: str) -> int:
        if self.tail is None:
            return max(0, len(text) - self.limit)
        run = self.tail.match(text[-self.limit:][::-1])
        return len(text) - (run.end() if run else 0)


class RegexDetector:
    """Finds the operator's patterns (``patterns``: name, pattern, ignore_case)."""

    def __init__(self, patterns: Iterable[tuple[str, str, bool]], max_match: int) -> None:
        self._patterns = tuple(_Pattern(name, pattern, ignore_case, max_match)
                               for name, pattern, ignore_case in patterns)
        self._overlap = max_match
        self.tails: Tails = ()  # a pattern's characters are a regex class: ``hold`` answers

    def hold(self, text: str) -> int:
        return min((p.hold(text) for p in self._patterns), default=len(text))

    def find(self, view: TextView, start: int) -> list[Match]:
        text = view.text
        found: dict[tuple[int, int, str], Match] = {}
        pieces = list(_pieces(text, start, self._overlap))  # the same windows for every pattern
        for p in self._patterns:
            for lo, hi, last in pieces:
                for m in p.compiled.finditer(text, lo, hi):
                    if m.end() > m.start() and (last or m.end() < hi):
                        found.setdefault((m.start(), m.end(), p.name), Match(m.start(), m.end(), p.name))
        return list(found.values())


def _pieces(text: str, start: int, overlap: int) -> Iterable[tuple[int, int, bool]]:
    """The scan windows of each text joined in ``text`` (``SEPARATOR``): a pattern never matches
    across two texts; ``last`` says the window ends where its text does."""
    while True:
        cut = text.find(SEPARATOR, start)
        end = len(text) if cut < 0 else cut
        for lo, hi in _windows(start, end, overlap):
            yield lo, hi, hi == end
        if cut < 0:
            return
        start = cut + 1


def _windows(start: int, end: int, overlap: int) -> Iterable[tuple[int, int]]:
    """``[lo, hi)`` windows of at most ``WINDOW`` characters covering ``[start, end)``, each after the
    first starting ``overlap`` characters before the previous one ends."""
    lo = start
    while True:
        hi = min(end, lo + WINDOW)
        yield lo, hi
        if hi >= end:
            return
        lo = max(lo + 1, hi - overlap)
