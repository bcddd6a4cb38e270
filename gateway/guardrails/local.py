"""The guards the gateway runs itself (pii, secrets, regex), scanned in one pass.

Every local guard that applies to a direction scans the same ``TextView`` (the byte maps are
made once), and all the texts of a request are scanned as one, joined by ``SEPARATOR`` (a
character no match can contain), so a conversation of many short messages costs one pass, not
one per message. Then: any match of a ``block`` guard blocks (the first in the text is
reported); every match of a ``log`` guard is an event; ``mask`` matches are replaced by
placeholders, the leftmost and then longest winning where two overlap (an earlier-listed guard
wins a tie).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .base import SEPARATOR, Detector, Tails, TextView, hold_of
from .events import Block, Direction, GuardEvent, LocalAction
from .masking import Masker

# A match of rule ``rank``: (start, -end, rank, entity). Sorted, the leftmost comes first, then the
# longest, then the earlier guard.
Hit = tuple[int, int, int, str]


@dataclass(frozen=True, slots=True)
class LocalRule:
    """One local guard: its detector and what it does with a match."""

    guard: str
    action: LocalAction
    restore: bool
    detector: Detector


class Outcome(NamedTuple):
    """What the decided matches of one piece of text come to."""

    text: str  # the piece with its masks applied
    blocked: Block | None
    events: tuple[GuardEvent, ...]


class LocalPlan:
    """The local guards of one direction, in the order the request's selection lists them."""

    __slots__ = ("rules", "direction", "_tails", "_holders")

    def __init__(self, rules: tuple[LocalRule, ...], direction: Direction) -> None:
        self.rules = rules
        self.direction = direction
        self._tails: Tails = tuple(dict.fromkeys(tail for rule in rules for tail in rule.detector.tails))
        self._holders = tuple(rule.detector for rule in rules if not rule.detector.tails)

    def scan(self, view: TextView, start: int = 0) -> list[Hit]:
        """Every match of every rule starting at or after ``start``, by position."""
        hits: list[Hit] = []
        for rank, rule in enumerate(self.rules):
            hits += ((m.start, -m.end, rank, m.entity) for m in rule.detector.find(view, start) if m.start >= start)
        hits.sort()
        return hits

    def hold(self, text: str) -> int:
        """From where the end of ``text`` may still grow into a match of one of the rules (streams)."""
        held = hold_of(text, self._tails)
        for detector in self._holders:
            held = min(held, detector.hold(text))
        return held

    def apply(self, text: str, start: int, end: int, hits: list[Hit], masker: Masker) -> Outcome:
        """``text[start:end]`` after ``hits`` (all inside it, sorted)."""
        rules = self.rules
        for _, _, rank, entity in hits:
            if rules[rank].action == "block":
                guard = rules[rank].guard
                return Outcome("", Block(guard, entity, self.direction),
                               (GuardEvent(guard, "block", entity, self.direction),))
        counts: dict[tuple[int, str], int] = {}  # (rule, entity) -> matches acted on
        pieces: list[str] = []
        at = start
        restorable = self.direction == "input"  # what a model says is never put back unmasked
        for begin, minus_end, rank, entity in hits:
            rule = rules[rank]
            if rule.action == "mask":
                if begin < at:  # overlapped by a mask already applied
                    continue
                value = text[begin:-minus_end]
                pieces += (text[at:begin], masker.placeholder(entity, value, rule.restore and restorable))
                at = -minus_end
            counts[(rank, entity)] = counts.get((rank, entity), 0) + 1
        events = tuple(GuardEvent(rules[rank].guard, rules[rank].action, entity, self.direction, n)
                       for (rank, entity), n in counts.items())
        if not pieces:
            return Outcome(text[start:end], None, events)
        pieces.append(text[at:end])
        return Outcome("".join(pieces), None, events)

    def scan_text(self, text: str, masker: Masker) -> Outcome:
        """A whole text (a message, a whole answer)."""
        return self.apply(text, 0, len(text), self.scan(TextView(text)), masker)

    def scan_texts(self, texts: Sequence[str], masker: Masker) -> tuple[list[str], Block | None,
                                                                         tuple[GuardEvent, ...]]:
        """Several texts in one pass (joined by ``SEPARATOR``; one by one if a text holds it)."""
        if len(texts) == 1 or any(SEPARATOR in t for t in texts):
            out: list[str] = []
            events: list[GuardEvent] = []
            for text in texts:
                outcome = self.scan_text(text, masker)
                events += outcome.events
                if outcome.blocked is not None:
                    return list(texts), outcome.blocked, tuple(events)
                out.append(outcome.text)
            return out, None, tuple(events)
        joined = self.scan_text(SEPARATOR.join(texts), masker)
        if joined.blocked is not None:
            return list(texts), joined.blocked, joined.events
        return joined.text.split(SEPARATOR), None, joined.events
