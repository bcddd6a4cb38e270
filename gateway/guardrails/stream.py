"""Output guards on a stream: fed text deltas chunk by chunk, it hands back the text that is safe
to send now.

Each local detector says how much of the text's end might still grow into a match (``hold``:
a trailing run of the characters its matches are made of, bounded by the longest match), and a
match that reaches the end of what has arrived is held whole. Everything before that point is
decided: it is masked (or the stream blocked) exactly as the whole text would be, and sent. What
is held is scanned again with the next delta, with the last ``CONTEXT`` characters already sent
kept in front for the checks that look behind a match. So a stream is delayed by about a word
(the trailing run of key characters), never more than the longest match.

Guards that ask a service (webhook, moderation) see the whole answer: with one of them on the
output, the scanner holds everything and decides at ``finish``.

With ``restore``, placeholders the model echoes are put back after the guards ran (so the
client's own values are not masked again), also when a placeholder is cut between chunks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from .base import TextView
from .events import Block, GuardEvent
from .local import LocalPlan
from .masking import Masker, StreamRestorer

CONTEXT = 128  # characters already sent, kept for look-behind checks (an AWS secret's label)
MAX_HELD = 32768  # past this, what is held is decided as if the stream had ended


class StreamStep(NamedTuple):
    """What to send now (may be empty), or why the stream must end."""

    text: str
    blocked: Block | None = None


_NOTHING = StreamStep("")
# the whole held answer -> (its text after the output guards, a block, events): RequestGuard's
WholeCheck = Callable[[str], Awaitable[tuple[str, Block | None, tuple[GuardEvent, ...]]]]


class StreamScanner:
    """One stream's output guards (one per choice and tool call: ``body.chunk_texts`` keys)."""

    __slots__ = ("_plan", "_masker", "_record", "_restorer", "_whole", "_held", "_context", "blocked")

    def __init__(self, plan: LocalPlan | None, masker: Masker, record: Callable[[tuple[GuardEvent, ...]], None],
                 restore: bool, whole: WholeCheck | None = None) -> None:
        self._plan = plan
        self._masker = masker
        self._record = record
        self._restorer = StreamRestorer(masker.restores) if restore and masker.restores else None
        self._whole = whole  # set: remote guards watch the output, the answer is decided whole
        self._held = ""
        self._context = ""
        self.blocked: Block | None = None

    def feed(self, delta: str) -> StreamStep:
        if self.blocked is not None:
            return StreamStep("", self.blocked)
        if self._whole is not None or self._plan is None:
            if self._whole is not None:
                self._held += delta
                return StreamStep("")
            return StreamStep(self._restored(delta))
        return self._step(self._held + delta, decide_all=len(self._held) + len(delta) > MAX_HELD)

    async def finish(self) -> StreamStep:
        """The rest, once the upstream's stream has ended."""
        if self.blocked is not None:
            return StreamStep("", self.blocked)
        if self._whole is not None:
            text, blocked, events = await self._whole(self._held)
            self._held = ""
            self._record(events)
            if blocked is not None:
                self.blocked = blocked
                return StreamStep("", blocked)
            step = StreamStep(self._restored(text))
        else:
            step = self._step(self._held, decide_all=True) if self._plan is not None else StreamStep("")
        if step.blocked is not None or self._restorer is None:
            return step
        return StreamStep(step.text + self._restorer.finish())

    def _step(self, pending: str, decide_all: bool) -> StreamStep:
        assert self._plan is not None
        full = self._context + pending
        base = len(self._context)
        safe = len(full) if decide_all else self._plan.hold(full)
        if safe <= base:  # all of it may still grow into a match: nothing to decide yet (the common case mid-word)
            self._held = pending
            return _NOTHING
        hits = self._plan.scan(TextView(full), base)
        # latest first: moving ``safe`` back can only make an earlier match straddle it
        for begin, minus_end, _, _ in reversed(hits):
            if begin < safe < -minus_end or (not decide_all and -minus_end >= len(full)):
                safe = min(safe, begin)
        decided = [h for h in hits if -h[1] <= safe]
        outcome = self._plan.apply(full, base, safe, decided, self._masker)
        self._record(outcome.events)
        if outcome.blocked is not None:
            self.blocked = outcome.blocked
            self._held = ""
            return StreamStep("", outcome.blocked)
        self._held = full[safe:]
        self._context = full[max(0, safe - CONTEXT):safe]
        return StreamStep(self._restored(outcome.text))

    def _restored(self, text: str) -> str:
        return self._restorer.feed(text) if self._restorer is not None else text
