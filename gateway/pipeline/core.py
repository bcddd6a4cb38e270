"""The request pipeline every inbound dialect runs on: auth → resolve → admit → dispatch → settle → record.

A dialect's HTTP resource (``api/dialect.py`` runs the sequence; each dialect supplies its
parser and renderer) parses its body into a ``Call`` (OpenAI's shape is the lingua franca) and
renders what comes back:

    exchange = await pipeline.begin(endpoint, request_id, authorization, x_api_key)  # 401/403 here
    call = <the dialect's parser>      # a failure here: pipeline.refuse(exchange, error)
    admitted = await pipeline.admit(exchange, call)  # the model resolved, client limits and budget held
    result = await pipeline.dispatch(admitted, guard)
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
shape is the lingua franca, which the OpenAI adapter passes through.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from ..cache import JSON
from ..core.call import Call
from ..core.targets import Route
from ..core.usage import Answer, Usage
from ..errors import GatewayError, ProviderError
from ..observability.usage import Outcome, record
from ..routing.dispatch import UpstreamAnswer
from ..routing.resolve import resolve
from ..server.runtime import Runtime
from .auth import authenticate_any
from .cached import CachedAnswers
from .context import CLIENT_CLOSED, Admitted, Disconnect, Exchange, Stream
from .estimate import cost_hold, input_tokens, output_tokens
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
        return Exchange(snapshot, caller.client, Outcome(request_id, caller.client.id, endpoint, "", 200, started))

    def refuse(self, exchange: Exchange, error: GatewayError) -> None:
        """Record a request that ends in ``error`` before anything was held for it (a bad body)."""
        exchange.outcome.status, exchange.outcome.error_code = error.status, error.code
        record(exchange.outcome, exchange.snapshot.server.log_requests, self.runtime.stores.ledger)

    async def admit(self, exchange: Exchange, call: Call, route: Route | None = None) -> Admitted:
        """Resolve the model and admit the request under the client's limits and budget. ``route``:
        one already resolved (the rest of the OpenAI surface: ``surface.py``). A refusal is recorded."""
        outcome = exchange.outcome
        outcome.model, outcome.stream = call.model, call.stream
        try:
            route = route or resolve(exchange.snapshot, call.model, exchange.client)
            prompt = input_tokens(call)
            est_tokens = prompt + (output_tokens(call) or 0)
            admission = await self.runtime.limiter.admit(exchange.client, est_tokens, cost_hold(call, route, prompt))
        except GatewayError as exc:
            self.refuse(exchange, exc)
            raise
        return Admitted(exchange, call, route, admission, est_tokens)

    async def dispatch(self, admitted: Admitted, guard: Disconnect,
                       cache_control: str | None = None) -> Answer | Stream | None:
        """Find an upstream answer (see the module docstring for what comes back), or the response
        cache's (``cached.py``; ``cache_control`` is the request's ``Cache-Control``)."""
        call = admitted.call
        plan = await self.cached.plan(admitted, cache_control)
        if plan is not None and plan.entry is not None:
            return await self.cached.hit(admitted, plan.entry, guard)
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
        if opened.answer is not None:
            if keep is not None:
                await self.cached.keep(keep, JSON, orjson.dumps(opened.answer.data), opened, opened.answer.usage)
            return Stream(whole_as_stream(admitted, opened, opened.answer, guard, self._settle))
        if call.stream:
            events = relay(admitted, opened, guard, self._settle)
            return Stream(events if keep is None else self.cached.capture(admitted, keep, opened, events))
        guard.close()
        answer = await self._whole(admitted, opened)
        if keep is not None:
            await self.cached.keep(keep, JSON, orjson.dumps(answer.data), opened, answer.usage)
        return answer

    async def open(self, admitted: Admitted, guard: Disconnect) -> UpstreamAnswer | None:
        """An upstream answer opened on some target and key; None if the client left meanwhile.
        A request that gets none is settled and recorded here (and the error raised)."""
        call, exchange = admitted.call, admitted.exchange
        try:
            opened = await self.runtime.dispatcher.open(exchange.snapshot, admitted.route, call.model, call,
                                                        admitted.est_tokens)
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

    async def _whole(self, admitted: Admitted, opened: UpstreamAnswer) -> Answer:
        outcome = admitted.exchange.outcome
        outcome.upstream_s = time.perf_counter() - outcome.started
        try:
            answer = opened.adapter.parse_response(opened.body or b"", admitted.call)
        except (ValueError, TypeError):
            await self.runtime.dispatcher.finish(opened, 0)
            error = ProviderError(f"Provider '{opened.target.provider.id}' sent an answer that is not JSON.")
            await self._fail(admitted, error.status, error.code)
            raise error from None
        await self._settle(admitted, opened, answer.usage)
        return answer

    async def _settle(self, admitted: Admitted, opened: UpstreamAnswer, usage: Usage) -> None:
        """A request that got an answer: the key's and the client's real usage and cost; the record."""
        runtime, exchange = self.runtime, admitted.exchange
        await runtime.dispatcher.finish(opened, usage.total_tokens)
        exchange.outcome.usage = usage
        exchange.outcome.cost_usd = await runtime.limiter.settle(admitted.admission, usage, opened.target.pricing)
        record(exchange.outcome, exchange.snapshot.server.log_requests, runtime.stores.ledger)

    async def _fail(self, admitted: Admitted, status: int, code: str | None) -> None:
        """A request that got no answer: release what was held; record it."""
        exchange = admitted.exchange
        await self.runtime.limiter.settle(admitted.admission, None, None)
        exchange.outcome.status, exchange.outcome.error_code = status, code
        record(exchange.outcome, exchange.snapshot.server.log_requests, self.runtime.stores.ledger)
