"""The pipeline's side of the response cache (``gateway/cache/``): a request that may be served
from it is looked up before any upstream is asked; a hit is answered without a provider key (the
client's limits still count it: ``admit``); a miss's answer is kept once it is complete."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import orjson

from ..cache import SSE, CachePlan, Entry
from ..core.pricing import cost_usd
from ..core.targets import Target
from ..core.usage import Answer, Usage
from ..observability.usage import HIT, record
from ..routing.dispatch import UpstreamAnswer
from ..server.runtime import Runtime
from .context import Admitted, Disconnect, Stream
from .guard import guard_answer
from .sse import completion_as_sse
from .stream import one_send


@dataclass(frozen=True, slots=True)
class Planned:
    """What the cache has for a request: a stored answer (``entry``), and the plan to keep the
    upstream's answer when there is none (``keep``: None when it is not to be kept)."""

    entry: Entry | None
    keep: CachePlan | None


class CachedAnswers:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def plan(self, admitted: Admitted, cache_control: str | None) -> Planned | None:
        """None when the request is not cached at all (no ``x-cache`` header then)."""
        exchange = admitted.exchange
        cache = self.runtime.cache
        plan = cache.plan(exchange.snapshot, exchange.client, admitted.call, admitted.route, cache_control)
        if plan is None:
            return None
        exchange.outcome.cache = "miss"
        entry = await cache.lookup(plan) if plan.lookup else None
        return Planned(entry, plan if plan.keep else None)

    async def keep(self, plan: CachePlan, form: str, payload: bytes, opened: UpstreamAnswer, usage: Usage) -> None:
        target = opened.target
        await self.runtime.cache.keep(plan, form, payload, target.provider.id, target.model, usage,
                                      cost_usd(target.pricing, usage))

    async def capture(self, admitted: Admitted, plan: CachePlan, opened: UpstreamAnswer,
                      events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        """``events`` passed on, and kept once the stream has ended cleanly (its usage settled). The
        capture stops (what it held dropped) the moment the stream passes ``plan.entry_limit``, so
        it never holds more than that; the events are joined once, only for an answer kept."""
        seen: list[bytes] | None = []
        size, limit = 0, plan.entry_limit
        try:
            async for event in events:
                if seen is not None:
                    size += len(event)
                    if size <= limit:
                        seen.append(event)
                    else:
                        seen = None  # too large to keep: relayed from here on, not captured
                yield event
        finally:
            await events.aclose()
        outcome = admitted.exchange.outcome
        if seen is not None and outcome.status == 200 and outcome.error_code is None and outcome.usage is not None:
            payload = b"".join(seen)
            seen = None
            await self.keep(plan, SSE, payload, opened, outcome.usage)

    async def hit(self, admitted: Admitted, entry: Entry, guard: Disconnect) -> Answer | Stream:
        """The cached answer: no provider key is used."""
        exchange, call = admitted.exchange, admitted.call
        outcome = exchange.outcome
        outcome.cache = HIT
        spec = exchange.snapshot.providers.get(entry.provider)
        outcome.target = Target(spec, entry.model) if spec is not None else None
        usage = Usage(entry.prompt_tokens, entry.completion_tokens, entry.usage_exact)
        if not call.stream:  # through the output guards here, before it is recorded (a stream: by dispatch)
            guard.close()
            answer, blocked = await guard_answer(admitted.guardrails, call, Answer(orjson.loads(entry.payload), usage))
            if blocked is not None:
                outcome.status, outcome.error_code = blocked.status, blocked.code
            if outcome.content is not None:
                outcome.content.response = answer.data
            await self._settle_hit(admitted, entry, usage)
            if blocked is not None:
                raise blocked
            return answer
        payload = entry.payload if entry.form == SSE else completion_as_sse(orjson.loads(entry.payload),
                                                                             call.wants_usage)
        return Stream(one_send(exchange, payload, guard, lambda: self._settle_hit(admitted, entry, usage)))

    async def _settle_hit(self, admitted: Admitted, entry: Entry, usage: Usage) -> None:
        """The client's tokens settled at the answer's usage, nothing spent; recorded with the cost saved."""
        exchange = admitted.exchange
        await self.runtime.limiter.settle(admitted.admission, usage, None)
        exchange.outcome.usage, exchange.outcome.cost_usd = usage, entry.cost_usd
        record(exchange.outcome, exchange.snapshot.server.log_requests, self.runtime.stores.ledger, self.runtime.sinks)
