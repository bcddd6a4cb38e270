"""The guards that ask a service: an operator's webhook, a provider's moderations model.

The engine describes each call and reads its answer; the call itself is made by the callables
the pipeline hands over in ``Remote`` (its upstream client for the webhook, its routing for the
moderations model), so nothing here opens a connection. Every call is bounded by the guard's
``timeout_s``; no answer in time, an error status, a failed call or an answer that cannot be
read is an ``error`` event, and ``on_error`` decides (``allow`` lets the text through, ``block``
stops it). Texts never appear in an event or a block.

Webhook protocol (docs/guardrails.md): ``POST url`` with JSON
``{"guardrail": name, "direction": "input"|"output", "texts": [...]}``; the answer is JSON
``{"action": "allow"}``, ``{"action": "block", "reason": "<code>"}`` or
``{"action": "replace", "texts": [...]}`` (as many texts as were sent).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..core.request import UpstreamRequest
from .events import Block, Direction, GuardEvent

_REASON = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}")


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class ModerationCall:
    """What the moderation guard asks of ``provider``: OpenAI's ``POST /moderations`` with ``body()``."""

    provider: str
    model: str
    texts: tuple[str, ...]
    timeout_s: float

    def body(self) -> dict[str, Any]:
        return {"model": self.model, "input": list(self.texts)}


# (request, timeout in seconds) -> the answer's status and body (read whole)
PostFn = Callable[[UpstreamRequest, float], Awaitable[HttpAnswer]]
# -> the provider's moderation answer, parsed JSON ({"results": [{"categories": ..., "category_scores": ...}]})
ModerateFn = Callable[[ModerationCall], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Remote:
    """How the engine reaches services. A guard whose callable is missing counts as failing."""

    post: PostFn | None = None
    moderate: ModerateFn | None = None


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    blocked: Block | None = None
    texts: tuple[str, ...] | None = None  # replacement texts, when a webhook sent some
    events: tuple[GuardEvent, ...] = ()


class _Failed(Exception):
    """A remote call that gave no usable answer; ``kind`` names how (timeout, status_503, bad_answer)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class _RemoteCheck:
    name: str
    action: str  # block | log
    timeout_s: float
    on_error: str  # allow | block

    def _failed(self, kind: str, direction: Direction) -> RemoteOutcome:
        events = [GuardEvent(self.name, "error", kind, direction)]
        if self.on_error == "allow" or self.action == "log":
            return RemoteOutcome(events=tuple(events))
        events.append(GuardEvent(self.name, "block", kind, direction))
        return RemoteOutcome(Block(self.name, kind, direction), None, tuple(events))

    def _verdict(self, entity: str, direction: Direction) -> RemoteOutcome:
        if self.action == "log":
            return RemoteOutcome(events=(GuardEvent(self.name, "log", entity, direction),))
        return RemoteOutcome(Block(self.name, entity, direction), None,
                             (GuardEvent(self.name, "block", entity, direction),))

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            raise _Failed("timeout") from None
        except _Failed:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the call is the guard's on_error case
            raise _Failed(type(exc).__name__[:40]) from None


@dataclass(frozen=True)
class WebhookCheck(_RemoteCheck):
    url: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)  # may hold a token: never in a repr

    async def check(self, texts: Sequence[str], direction: Direction, remote: Remote) -> RemoteOutcome:
        if not texts:
            return RemoteOutcome()
        if remote.post is None:
            return self._failed("unavailable", direction)
        request = UpstreamRequest("POST", self.url, {"content-type": "application/json", **dict(self.headers)},
                                  orjson.dumps({"guardrail": self.name, "direction": direction, "texts": list(texts)}))
        try:
            answer = await self._bounded(remote.post(request, self.timeout_s))
            if not 200 <= answer.status < 300:
                raise _Failed(f"status_{answer.status}")
            return self._read(answer.body, len(texts), direction)
        except _Failed as failure:
            return self._failed(failure.kind, direction)

    def _read(self, body: bytes, sent: int, direction: Direction) -> RemoteOutcome:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Failed("bad_answer") from None
        action = answer.get("action") if isinstance(answer, dict) else None
        if action == "allow":
            return RemoteOutcome()
        if action == "block":
            reason = answer.get("reason")
            fit = isinstance(reason, str) and _REASON.fullmatch(reason)
            return self._verdict(reason if fit and isinstance(reason, str) else "webhook", direction)
        texts = answer.get("texts") if action == "replace" else None
        if not isinstance(texts, list) or len(texts) != sent or not all(isinstance(t, str) for t in texts):
            raise _Failed("bad_answer")
        if self.action == "log":
            return RemoteOutcome(events=(GuardEvent(self.name, "log", "replace", direction),))
        return RemoteOutcome(None, tuple(texts), (GuardEvent(self.name, "replace", "webhook", direction),))


@dataclass(frozen=True)
class ModerationCheck(_RemoteCheck):
    provider: str
    model: str
    categories: tuple[str, ...]  # empty: any category
    threshold: float | None

    async def check(self, texts: Sequence[str], direction: Direction, remote: Remote) -> RemoteOutcome:
        if not texts:
            return RemoteOutcome()
        if remote.moderate is None:
            return self._failed("unavailable", direction)
        call = ModerationCall(self.provider, self.model, tuple(texts), self.timeout_s)
        try:
            answer = await self._bounded(remote.moderate(call))
            flagged = self._flagged(answer)
        except _Failed as failure:
            return self._failed(failure.kind, direction)
        return self._verdict(flagged, direction) if flagged else RemoteOutcome()

    def _flagged(self, answer: Any) -> str | None:
        """The first chosen category the answer flags, or None."""
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or not results:
            raise _Failed("bad_answer")
        for result in results:
            if not isinstance(result, dict):
                raise _Failed("bad_answer")
            source = result.get("category_scores" if self.threshold is not None else "categories")
            if not isinstance(source, Mapping):
                raise _Failed("bad_answer")
            for category in self.categories or tuple(source):
                if self._over(source.get(category)):
                    return str(category)[:64]
        return None

    def _over(self, value: Any) -> bool:
        if self.threshold is None:
            return value is True
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= self.threshold
