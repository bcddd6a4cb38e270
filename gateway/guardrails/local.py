"""The guards the gateway runs itself (pii, secrets, regex), scanned in one pass per text.

Every local guard that applies to a direction scans the same ``TextView`` (the byte maps are
made once). Then: any match of a ``block`` guard blocks (the first in the text is reported); every
match of a ``log`` guard is an event; ``mask`` matches replace their text by placeholders, the
leftmost and then longest winning where two overlap (an earlier-listed guard wins a tie).
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Detector, Match, TextView
from .events import Block, Direction, GuardEvent
from .masking import Masker


@dataclass(frozen=True, slots=True)
class LocalRule:
    """One local guard: its detector and what it does with a match."""

    guard: str
    action: str  # block | mask | log
    restore: bool
    detector: Detector


@dataclass(frozen=True, slots=True)
class Hit:
    match: Match
    rank: int  # the rule's position: an earlier guard wins a tie
    rule: LocalRule

    @property
    def start(self) -> int:
        return self.match.start

    @property
    def end(self) -> int:
        return self.match.end


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the decided matches of one piece of text come to."""

    text: str  # the piece with its masks applied
    blocked: Block | None
    events: tuple[GuardEvent, ...]


class LocalPlan:
    """The local guards of one direction, in the order the request's selection lists them."""

    __slots__ = ("rules", "direction")

    def __init__(self, rules: tuple[LocalRule, ...], direction: Direction) -> None:
        self.rules = rules
        self.direction = direction

    def scan(self, view: TextView, start: int = 0) -> list[Hit]:
        """Every match of every rule starting at or after ``start``, by position."""
        hits: list[Hit] = []
        for rank, rule in enumerate(self.rules):
            hits += (Hit(m, rank, rule) for m in rule.detector.find(view, start) if m.start >= start)
        hits.sort(key=lambda h: (h.start, -h.end, h.rank))
        return hits

    def hold(self, text: str) -> int:
        return min(rule.detector.hold(text) for rule in self.rules)

    def apply(self, text: str, start: int, end: int, hits: list[Hit], masker: Masker) -> Outcome:
        """``text[start:end]`` after ``hits`` (all inside it, sorted by position)."""
        events: list[GuardEvent] = []
        for h in hits:
            if h.rule.action == "block":
                return Outcome("", Block(h.rule.guard, h.match.entity, self.direction),
                               (GuardEvent(h.rule.guard, "block", h.match.entity, self.direction),))
        pieces: list[str] = []
        at = start
        for h in hits:
            action = h.rule.action
            if action == "log" or h.start < at:  # logged only, or overlapped by a mask already applied
                if action == "log":
                    events.append(GuardEvent(h.rule.guard, "log", h.match.entity, self.direction))
                continue
            pieces.append(text[at:h.start])
            pieces.append(masker.placeholder(h.match.entity, text[h.start:h.end], h.rule.restore))
            events.append(GuardEvent(h.rule.guard, "mask", h.match.entity, self.direction))
            at = h.end
        if not pieces:
            return Outcome(text[start:end], None, tuple(events))
        pieces.append(text[at:end])
        return Outcome("".join(pieces), None, tuple(events))

    def scan_text(self, text: str, masker: Masker) -> Outcome:
        """A whole text (a message, a whole answer)."""
        return self.apply(text, 0, len(text), self.scan(TextView(text)), masker)
