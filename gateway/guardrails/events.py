"""What a guard did, without the content: the events the pipeline counts, logs and writes to the
ledger, and the block a client is told about.

Neither ever holds matched text: a guard name, an action, an entity type (``email``,
``openai_key``, a pattern's name, a moderation category, a webhook's reason code) and a count.
Both are named tuples: immutable, and the cheapest objects to make on the request path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

from ..errors import GuardrailBlocked

Direction = Literal["input", "output"]
# block | mask | log (a local guard's action); replace (a webhook replaced the text);
# error (a webhook or moderation call failed: ``entity`` says how, ``on_error`` decided the rest)
Action = Literal["block", "mask", "log", "replace", "error"]
LocalAction = Literal["block", "mask", "log"]


class GuardEvent(NamedTuple):
    """One guard's action on one request, ``times`` times: a label set for
    ``gateway_guardrail_actions_total{guardrail,action}`` (increment it by ``times``) and one entry
    of the ledger/audit line (``as_record``)."""

    guardrail: str
    action: Action
    entity: str
    direction: Direction
    times: int = 1

    def as_record(self) -> dict[str, str | int]:
        """The audit/ledger form (JSON-ready)."""
        return {"guardrail": self.guardrail, "action": self.action, "entity": self.entity,
                "direction": self.direction, "count": self.times}


class Block(NamedTuple):
    """Why a request (or an answer) was stopped."""

    guardrail: str
    entity: str
    direction: Direction

    def message(self) -> str:
        """For the client's error: the guard and the entity type, never the matched text."""
        where = "request" if self.direction == "input" else "answer"
        return f"The {where} was blocked by guardrail '{self.guardrail}' ({self.entity})."

    def error(self) -> GuardrailBlocked:
        """The typed error (400, ``guardrail_blocked``) a dialect renders in its own shape."""
        return GuardrailBlocked(self.message(), guardrail=self.guardrail, entity=self.entity)


def ledger_text(events: Iterable[GuardEvent]) -> str:
    """The ledger's compact form: ``guardrail:action:direction:count:entity`` per event, joined by
    commas (the entity last: a webhook's reason code may hold a colon, never a comma)."""
    return ",".join(f"{e.guardrail}:{e.action}:{e.direction}:{e.times}:{e.entity}" for e in events)


def merged(events: Iterable[GuardEvent]) -> tuple[GuardEvent, ...]:
    """Events with the same guard, action, entity and direction added into one (first-seen order)."""
    totals: dict[tuple[str, str, str, str], GuardEvent] = {}
    for e in events:
        key = (e.guardrail, e.action, e.entity, e.direction)
        seen = totals.get(key)
        totals[key] = e if seen is None else GuardEvent(e.guardrail, e.action, e.entity, e.direction,
                                                        seen.times + e.times)
    return tuple(totals.values())
