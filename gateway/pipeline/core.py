"""The request pipeline every inbound dialect runs on: auth → resolve → admit → dispatch → settle → record.

A dialect's HTTP resource (``api/openai``; Anthropic's and Google's next to it) only parses its
body into a ``Call`` (OpenAI's shape is the lingua franca) and renders what comes back:

    ex = await pipeline.begin(endpoint, request_id, authorization, x_api_key)   # 401/403 here
    call = <the dialect's parser>            # a failure here: pipeline.refuse(ex, error)
    headers = await pipeline.admit(ex, call)  # resolve the model, client limits and budget hold
    result = await pipeline.dispatch(ex, guard)
    # Whole (OpenAI-shape JSON + usage) | EventStream (OpenAI-shape SSE events) | None (client left: 499)

Every way a request ends is settled (the budget hold released, the real usage and cost
charged, the key's reservation settled) and recorded exactly once: before ``dispatch``
returns for a whole answer or an error, in the ``EventStream``'s cleanup for a stream.

Same-dialect pass-through: a ``Call`` names its inbound ``dialect``; a dialect other than
OpenAI's puts its body translated into OpenAI's shape in ``call.body`` (what estimates, limits
and every other protocol's adapter read) and the client's own body in ``call.native_body``.
The route is chosen per attempt, so only the adapter that answered knows which body it sent:
where ``call.dialect`` equals its protocol it sends ``native_body`` and returns the upstream's
answer and events untranslated (``ProviderAdapter``'s docstring), and ``dispatch`` sets
``ex.native`` so the dialect's renderer writes them as they are; otherwise the renderer
translates the OpenAI-shape result back. Only auth, routing (the model replaced by the
target's), limits and accounting apply either way. The OpenAI dialect needs no such branch: its
shape is the lingua franca, which the OpenAI adapter passes through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import replace

import orjson

from ..cache import JSON, SSE, CachePlan, Entry
from ..core.call import Call
from ..core.pricing import cost_usd
from ..core.targets import Route, Target
from ..core.usage import Answer, Usage
from ..errors import GatewayError, ProviderError
from ..observability.usage import HIT, Outcome, record
from ..routing.dispatch import Opened
from ..routing.resolve import resolve
from ..server.runtime import Runtime
from .auth import authenticate_any
from .context import CLIENT_CLOSED, Disconnect, EventStream, Exchange, Whole
from .estimate import cost_hold, input_tokens, output_tokens
from .sse import completion_as_sse
from .stream import one_send, relay, whole_as_stream


class Pipeline:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def begin(self, endpoint: str, request_id: str, authorization: str | None,
                    x_api_key: str | None) -> Exchange:
        """Authenticate on the current snapshot (kept to the end) or the store's client directory;
        errors here are not recorded."""
        started = time.perf_counter()
        snap = self.runtime.snapshot
        caller = await authenticate_any(snap, self.runtime.directory, authorization, x_api_key)
        client = caller.client
        if not caller.is_master and not client.budget.own() and snap.default_budget.limits_spend():
            client = replace(client, budget=snap.default_budget)  # BUDGET_PROFILE's, for a client without its own
        return Exchange(snap, client, Outcome(request_id, client.id, endpoint, "", 200, started))

    def refuse(self, ex: Exchange, error: GatewayError) -> None:
        """Record a request that ends in ``error`` before anything was held for it (a bad body)."""
        ex.outcome.status, ex.outcome.error_code = error.status, error.code
        record(ex.outcome, ex.snap.server.log_requests, self.runtime.stores.ledger)

    async def admit(self, ex: Exchange, call: Call, route: Route | None = None) -> dict[str, str]:
        """Resolve the model and admit the request under the client's limits and budget; the headers
        (the client's rate-limit headers) every answer from here on carries, errors included.
        ``route``: one already resolved (the rest of the OpenAI surface: ``surface.py``)."""
        outcome = ex.outcome
        outcome.model, outcome.stream = call.model, call.stream
        ex.call = call
        try:
            route = ex.route = route or resolve(ex.snap, call.model, ex.client)
            prompt = input_tokens(call)
            ex.est_tokens = prompt + (output_tokens(call) or 0)
            admission = ex.admission = await self.runtime.limiter.admit(ex.client, ex.est_tokens,
                                                                        cost_hold(call, route, prompt))
        except GatewayError as exc:
            self.refuse(ex, exc)
            raise
        return admission.headers

    async def dispatch(self, ex: Exchange, guard: Disconnect,
                       cache_control: str | None = None) -> Whole | EventStream | None:
        """Find an upstream answer (see the module docstring for what comes back), or the response
        cache's (issue 10: gateway/cache/; ``cache_control`` is the request's ``Cache-Control``)."""
        call, route = ex.call, ex.route
        assert call is not None and route is not None, "admit() first"
        plan = self.runtime.cache.plan(ex.snap, ex.client, call, route, cache_control)
        if plan is not None:
            ex.outcome.cache = "miss"
            entry = await self.runtime.cache.lookup(plan) if plan.lookup else None
            if entry is not None:
                return await self._hit(ex, call, entry, guard)
            plan = plan if plan.keep else None
        opened = await self.open(ex, guard)
        if opened is None:
            return None
        # same-dialect pass-through: the adapter answered in the client's own protocol (see below)
        ex.native = call.native_body is not None and call.dialect == opened.target.provider.protocol
        if opened.answer is not None:
            if plan is not None:
                await self._keep(plan, JSON, orjson.dumps(opened.answer.data), opened, opened.answer.usage)
            return EventStream(whole_as_stream(ex, call, opened, opened.answer, guard, self._settle))
        if call.stream:
            events = relay(ex, call, opened, guard, self._settle)
            return EventStream(events if plan is None else self._capture(ex, plan, opened, events))
        guard.close()
        answer = await self._whole(ex, call, opened)
        if plan is not None:
            await self._keep(plan, JSON, orjson.dumps(answer.data), opened, answer.usage)
        return answer

    async def open(self, ex: Exchange, guard: Disconnect) -> Opened | None:
        """An upstream answer opened on some target and key; None if the client left meanwhile.
        A request that gets none is settled and recorded here (and the error raised)."""
        call, route = ex.call, ex.route
        assert call is not None and route is not None, "admit() first"
        try:
            opened = await self.runtime.dispatcher.open(ex.snap, route, call.model, call, ex.est_tokens)
        except asyncio.CancelledError:
            guard.close()
            if not guard.absorb():
                raise
            await asyncio.shield(self._fail(ex, CLIENT_CLOSED, None))
            return None
        except GatewayError as exc:
            guard.close()
            if exc.tried is not None:  # the provider and key the request failed on, for the record
                ex.outcome.target, ex.outcome.key_label = exc.tried
            await self._fail(ex, exc.status, exc.code)
            raise
        except Exception:
            guard.close()
            await self._fail(ex, 500, "internal_error")
            raise
        ex.outcome.target, ex.outcome.key_label = opened.target, opened.reservation.state.label
        return opened

    # --- the response cache (issue 10 item 6) ---------------------------------------------------
    async def _keep(self, plan: CachePlan, form: str, payload: bytes, opened: Opened, usage: Usage) -> None:
        target = opened.target
        await self.runtime.cache.keep(plan, form, payload, target.provider.id, target.model, usage,
                                      cost_usd(target.pricing, usage))

    async def _capture(self, ex: Exchange, plan: CachePlan, opened: Opened,
                       events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        """``events`` passed on, and kept once the stream has ended cleanly (its usage settled)."""
        seen: list[bytes] = []
        try:
            async for event in events:
                seen.append(event)
                yield event
        finally:
            await events.aclose()
        outcome = ex.outcome
        if outcome.status == 200 and outcome.error_code is None and outcome.usage is not None:
            await self._keep(plan, SSE, b"".join(seen), opened, outcome.usage)

    async def _hit(self, ex: Exchange, call: Call, entry: Entry, guard: Disconnect) -> Whole | EventStream:
        """The cached answer: no provider key is used; the client's limits count it (``admit``)."""
        outcome = ex.outcome
        outcome.cache = HIT
        spec = ex.snap.providers.get(entry.provider)
        outcome.target = Target(spec, entry.model) if spec is not None else None
        usage = Usage(entry.prompt_tokens, entry.completion_tokens, entry.usage_exact)
        if not call.stream:
            guard.close()
            await self._settle_hit(ex, entry, usage)
            return Answer(orjson.loads(entry.payload), usage)
        payload = entry.payload if entry.form == SSE else completion_as_sse(orjson.loads(entry.payload),
                                                                             call.wants_usage)
        return EventStream(one_send(ex, payload, guard, lambda: self._settle_hit(ex, entry, usage)))

    async def _settle_hit(self, ex: Exchange, entry: Entry, usage: Usage) -> None:
        """The client's tokens settled at the answer's usage, nothing spent; recorded with the cost saved."""
        if ex.admission is not None:
            await self.runtime.limiter.settle(ex.admission, usage, None)
        ex.outcome.usage, ex.outcome.cost_usd = usage, entry.cost_usd
        record(ex.outcome, ex.snap.server.log_requests, self.runtime.stores.ledger)
    # --- end response cache ---------------------------------------------------------------------

    async def _whole(self, ex: Exchange, call: Call, opened: Opened) -> Answer:
        ex.outcome.upstream_s = time.perf_counter() - ex.outcome.started
        try:
            answer = opened.adapter.parse_response(opened.body or b"", call)
        except (ValueError, TypeError):
            await self.runtime.dispatcher.finish(opened, 0)
            error = ProviderError(f"Provider '{opened.target.provider.id}' sent an answer that is not JSON.")
            await self._fail(ex, error.status, error.code)
            raise error from None
        await self._settle(ex, opened, answer.usage)
        return answer

    async def _settle(self, ex: Exchange, opened: Opened, usage: Usage) -> None:
        """A request that got an answer: the key's and the client's real usage and cost; the record."""
        rt = self.runtime
        await rt.dispatcher.finish(opened, usage.total_tokens)
        ex.outcome.usage = usage
        if ex.admission is not None:
            ex.outcome.cost_usd = await rt.limiter.settle(ex.admission, usage, opened.target.pricing)
        record(ex.outcome, ex.snap.server.log_requests, self.runtime.stores.ledger)

    async def _fail(self, ex: Exchange, status: int, code: str | None) -> None:
        """A request that got no answer: release what was held; record it."""
        if ex.admission is not None:
            await self.runtime.limiter.settle(ex.admission, None, None)
        ex.outcome.status, ex.outcome.error_code = status, code
        record(ex.outcome, ex.snap.server.log_requests, self.runtime.stores.ledger)
