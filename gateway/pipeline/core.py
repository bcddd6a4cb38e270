"""The request pipeline every inbound dialect runs on: auth → resolve → admit → dispatch → settle → record.

A dialect's HTTP resource (``api/dialect.py`` runs the sequence; each dialect supplies its
parser and renderer) parses its body into a ``Call`` (OpenAI's shape is the lingua franca) and
renders what comes back:

    exchange = await pipeline.begin(endpoint, request_id, authorization, x_api_key)  # 401/403 here
    if pipeline.tracing is not None:   # the request's span, a child of the client's traceparent
        pipeline.trace(exchange, traceparent, tracestate)
    call = <the dialect's parser>      # a failure here: pipeline.refuse(exchange, error)
    admitted = await pipeline.admit(exchange, call)  # the model resolved, the input guards passed,
                                                     # client limits and budget held
    result = await pipeline.dispatch(admitted, guard)  # the answer through the output guards
    # Answer (OpenAI-shape JSON + usage) | Stream (OpenAI-shape SSE events) | None (client left: 499)

Every way a request ends is settled (the budget hold released, the real usage and cost
charged, the key's reservation settled) and recorded exactly once: before ``dispatch``
returns for a whole answer or an error, in the ``Stream``'s cleanup for a stream.

Same-dialect pass-through: a ``Call`` names its inbound ``dialect``; a dialect other than
OpenAI's puts its body translated into OpenAI's shape in ``call.body`` (what estimates, limits
and every other protocol's adapter read) and the client's own body in ``call.native_body``.
The route is chosen per attempt, so only the adapter that answered knows which body it sent:
where ``call.dialect`` equals its protocol it sends ``native_body`` and returns the upstream's
answer and events untranslated (``ProviderAdapter``'s docstring), and ``dispatch`` sets
``exchange.native`` so the dialect's renderer writes them as they are; otherwise the renderer
translates the OpenAI-shape result back. Only auth, routing (the model replaced by the
target's), limits and accounting apply either way. The OpenAI dialect needs no such branch: its
shape is the lingua franca, which the OpenAI adapter passes through. The guard stage
(``guard.py``) runs in ``admit`` on every route: a request it must rewrite or whose answer it must
read is translated rather than passed through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import orjson

from ..cache import JSON, CachePlan
from ..core.call import Call
from ..core.targets import Route
from ..core.usage import Answer, Usage
from ..errors import GatewayError, ProviderError
from ..observability.sinks.record import Content
from ..observability.traces import Tracing
from ..observability.usage import Outcome, record
from ..routing.dispatch import UpstreamAnswer
from ..routing.resolve import resolve
from ..server.runtime import Runtime
from .auth import authenticate_any
from .cached import CachedAnswers
from .context import CLIENT_CLOSED, Admitted, Disconnect, Exchange, Stream
from .estimate import cost_hold, input_tokens, output_tokens
from .guard import guard_answer, guard_input
from .guard_stream import guard_stream
from .stream import relay, whole_as_stream

log = logging.getLogger("gateway.translate")


class Pipeline:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.cached = CachedAnswers(runtime)

    async def begin(self, endpoint: str, request_id: str, authorization: str | None,
                    x_api_key: str | None) -> Exchange:
        """Authenticate on the current snapshot (kept to the end) or the store's client directory;
        errors here are not recorded."""
        started = time.perf_counter()
        snapshot = self.runtime.snapshot
        caller = await authenticate_any(snapshot, self.runtime.directory, authorization, x_api_key)
        client = caller.client
        if snapshot.default_budget.limits_spend() and not caller.is_master and not client.budget.own():
            client = replace(client, budget=snapshot.default_budget)  # BUDGET_PROFILE's, for a client without its own
        return Exchange(snapshot, client, Outcome(request_id, client.id, endpoint, "", 200, started))

    @property
    def tracing(self) -> Tracing | None:
        """This worker's tracer; None when tracing is off (then ``trace`` need not be called)."""
        return self.runtime.tracing

    def trace(self, exchange: Exchange, traceparent: str | None, tracestate: str | None) -> None:
        """Open the request's span (ended when it is recorded), a child of the client's W3C trace
        context when it sent one. Call it right after ``begin`` when ``tracing`` is not None."""
        tracing, outcome = self.runtime.tracing, exchange.outcome
        if tracing is not None:
            outcome.trace = tracing.request(outcome.endpoint, outcome.request_id, outcome.client, outcome.arrived,
                                            exchange.snapshot.observability.capture_content, traceparent, tracestate)

    def refuse(self, exchange: Exchange, error: GatewayError) -> None:
        """Record a request that ends in ``error`` before anything was held for it (a bad body)."""
        exchange.outcome.status, exchange.outcome.error_code = error.status, error.code
        record(exchange.outcome, exchange.snapshot.server.log_requests, self.runtime.stores.ledger, self.runtime.sinks)

    async def admit(self, exchange: Exchange, call: Call, route: Route | None = None) -> Admitted:
        """Resolve the model, pass the input guards (``guard.py``: nothing is held or sent for a
        request they block) and admit the request under the client's limits and budget. ``route``:
        one already resolved (the rest of the OpenAI surface: ``surface.py``). A refusal is recorded."""
        outcome = exchange.outcome
        outcome.model, outcome.stream = call.model, call.stream
        if outcome.trace is not None:
            outcome.trace.called(call)
        if exchange.snapshot.observability.capture_content:  # for the sinks' records only
            outcome.content = Content(request=call.body)
        try:
            route = route or resolve(exchange.snapshot, call.model, exchange.client)
            guardrails = None
            if exchange.snapshot.guardrails.guards:  # one look when no guard is configured (no call made)
                call, guardrails = await guard_input(self.runtime.guard_calls, exchange, call)
            prompt = input_tokens(call)
            est_tokens = prompt + (output_tokens(call) or 0)
            admission = await self.runtime.limiter.admit(exchange.client, est_tokens, cost_hold(call, route, prompt))
        except GatewayError as exc:
            self.refuse(exchange, exc)
            raise
        return Admitted(exchange, call, route, admission, est_tokens, guardrails)

    async def answered_here(self, admitted: Admitted) -> None:
        """A request the gateway answered itself after admitting it (a token count it estimated once a
        guard changed the text it would have passed on): what it held released, the request recorded."""
        await self._fail(admitted, 200, None)

    async def dispatch(self, admitted: Admitted, guard: Disconnect,
                       cache_control: str | None = None) -> Answer | Stream | None:
        """Find an upstream answer (see the module docstring for what comes back), or the response
        cache's (``cached.py``; ``cache_control`` is the request's ``Cache-Control``)."""
        call = admitted.call
        plan = await self.cached.plan(admitted, cache_control)
        if plan is not None and plan.entry is not None:
            return self._guarded(admitted, await self.cached.hit(admitted, plan.entry, guard))
        opened = await self.open(admitted, guard)
        if opened is None:
            return None
        # same-dialect pass-through: the adapter answered in the client's own protocol (see above)
        native = admitted.exchange.native = (call.native_body is not None
                                             and call.dialect == opened.target.provider.protocol)
        if call.dropped and not native:
            log.debug("request %s: not carried over to provider '%s' (%s): %s", admitted.exchange.outcome.request_id,
                      opened.target.provider.id, opened.target.provider.protocol, ", ".join(call.dropped))
        keep = plan.keep if plan is not None else None
        trace = admitted.exchange.outcome.trace
        if opened.answer is not None:
            if trace is not None:
                trace.answered(opened.answer.data)
            if keep is not None:
                await self.cached.keep(keep, JSON, orjson.dumps(opened.answer.data), opened, opened.answer.usage)
            return self._guarded(admitted, Stream(whole_as_stream(admitted, opened, opened.answer, guard,
                                                                  self._settle)))
        if call.stream:  # the cache keeps the upstream's events: the output guards apply to every answer served
            events = relay(admitted, opened, guard, self._settle)
            if trace is not None:
                events = trace.watch(events)
            return self._guarded(admitted, Stream(events if keep is None else
                                                  self.cached.capture(admitted, keep, opened, events)))
        guard.close()
        return await self._whole(admitted, opened, keep)

    @staticmethod
    def _guarded(admitted: Admitted, result: Answer | Stream) -> Answer | Stream:
        """A stream through the output guards, when the request has any (whole answers pass them
        before they are recorded: ``_whole``, ``CachedAnswers.hit``)."""
        guardrails = admitted.guardrails
        if guardrails is None or not guardrails.guards_output or not isinstance(result, Stream):
            return result
        return guard_stream(admitted, guardrails, result)

    async def open(self, admitted: Admitted, guard: Disconnect) -> UpstreamAnswer | None:
        """An upstream answer opened on some target and key; None if the client left meanwhile.
        A request that gets none is settled and recorded here (and the error raised)."""
        call, exchange = admitted.call, admitted.exchange
        try:
            opened = await self.runtime.dispatcher.open(exchange.snapshot, admitted.route, call.model, call,
                                                        admitted.est_tokens, exchange.outcome.trace)
        except asyncio.CancelledError:
            guard.close()
            if not guard.absorb():
                raise
            await asyncio.shield(self._fail(admitted, CLIENT_CLOSED, None))
            return None
        except GatewayError as exc:
            guard.close()
            if exc.tried is not None:  # the provider and key the request failed on, for the record
                exchange.outcome.target, exchange.outcome.key_label = exc.tried
            await self._fail(admitted, exc.status, exc.code)
            raise
        except Exception:
            guard.close()
            await self._fail(admitted, 500, "internal_error")
            raise
        exchange.outcome.target, exchange.outcome.key_label = opened.target, opened.reservation.state.label
        return opened

    async def _whole(self, admitted: Admitted, opened: UpstreamAnswer, keep: CachePlan | None) -> Answer:
        """The answer read, kept in the response cache as the upstream sent it (``keep``), passed
        through the output guards, settled and recorded; a block is raised once recorded."""
        outcome = admitted.exchange.outcome
        outcome.upstream_s = time.perf_counter() - outcome.started
        try:
            answer = opened.adapter.parse_response(opened.body or b"", admitted.call)
        except (ValueError, TypeError):
            await self.runtime.dispatcher.finish(opened, None)
            error = ProviderError(f"Provider '{opened.target.provider.id}' sent an answer that is not JSON.")
            await self._fail(admitted, error.status, error.code)
            raise error from None
        if keep is not None:
            await self.cached.keep(keep, JSON, orjson.dumps(answer.data), opened, answer.usage)
        answer, blocked = await guard_answer(admitted.guardrails, admitted.call, answer)
        if blocked is not None:
            outcome.status, outcome.error_code = blocked.status, blocked.code
        if outcome.trace is not None:
            outcome.trace.answered(answer.data)
        if outcome.content is not None:
            outcome.content.response = answer.data
        await self._settle(admitted, opened, answer.usage)
        if blocked is not None:
            raise blocked
        return answer

    async def _settle(self, admitted: Admitted, opened: UpstreamAnswer, usage: Usage) -> None:
        """A request that got an answer: the key's and the client's real usage and cost; the record."""
        runtime, exchange = self.runtime, admitted.exchange
        await runtime.dispatcher.finish(opened, usage)
        exchange.outcome.usage = usage
        exchange.outcome.cost_usd = await runtime.limiter.settle(admitted.admission, usage, opened.target.pricing)
        record(exchange.outcome, exchange.snapshot.server.log_requests, runtime.stores.ledger, runtime.sinks)

    async def _fail(self, admitted: Admitted, status: int, code: str | None) -> None:
        """A request that got no answer: release what was held; record it."""
        exchange = admitted.exchange
        await self.runtime.limiter.settle(admitted.admission, None, None)
        exchange.outcome.status, exchange.outcome.error_code = status, code
        record(exchange.outcome, exchange.snapshot.server.log_requests, self.runtime.stores.ledger, self.runtime.sinks)
