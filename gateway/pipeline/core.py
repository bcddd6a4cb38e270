"""The request pipeline every inbound dialect runs on: auth → resolve → admit → dispatch → settle → record.

A dialect's HTTP resource (``api/openai``; Anthropic's and Google's next to it) only parses its
body into a ``Call`` (OpenAI's shape is the lingua franca) and renders what comes back:

    ex = pipeline.begin(endpoint, request_id, authorization, x_api_key)   # 401/403 here
    call = <the dialect's parser>            # a failure here: pipeline.refuse(ex, error)
    headers = pipeline.admit(ex, call)       # resolve the model, client limits and budget hold
    result = await pipeline.dispatch(ex, guard)
    # Whole (OpenAI-shape JSON + usage) | EventStream (OpenAI-shape SSE events) | None (client left: 499)

Every way a request ends is settled (the budget hold released, the real usage and cost
charged, the key's reservation settled) and recorded exactly once: before ``dispatch``
returns for a whole answer or an error, in the ``EventStream``'s cleanup for a stream.

Same-dialect pass-through: a ``Call`` names its inbound ``dialect``. Where it equals the
protocol of the target's adapter, the adapter may take ``call.body`` as its own protocol's
request and return the upstream's answer and events untranslated (only auth, routing, limits
and accounting apply); the dialect's renderer then writes them as they are. The OpenAI dialect
needs no such branch: its shape is the lingua franca, which the OpenAI adapter passes through.
"""

from __future__ import annotations

import asyncio
import time

from ..auth import authenticate
from ..errors import GatewayError, ProviderError
from ..observability.usage import Outcome, record
from ..providers.base import Answer, Call, Usage
from ..routing.dispatch import Opened
from ..routing.resolve import resolve
from ..runtime import Runtime
from .context import CLIENT_CLOSED, Disconnect, EventStream, Exchange, Whole
from .estimate import cost_hold, input_tokens, output_tokens
from .stream import relay, whole_as_stream


class Pipeline:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def begin(self, endpoint: str, request_id: str, authorization: str | None, x_api_key: str | None) -> Exchange:
        """Authenticate on the current snapshot (kept to the end); errors here are not recorded."""
        started = time.perf_counter()
        snap = self.runtime.snapshot
        caller = authenticate(snap, authorization, x_api_key)
        return Exchange(snap, caller.client, Outcome(request_id, caller.client.id, endpoint, "", 200, started))

    def refuse(self, ex: Exchange, error: GatewayError) -> None:
        """Record a request that ends in ``error`` before anything was held for it (a bad body)."""
        ex.outcome.status, ex.outcome.error_code = error.status, error.code
        record(ex.outcome, ex.snap.server.log_requests)

    def admit(self, ex: Exchange, call: Call) -> dict[str, str]:
        """Resolve the model and admit the request under the client's limits and budget; the headers
        (the client's rate-limit headers) every answer from here on carries, errors included."""
        outcome = ex.outcome
        outcome.model, outcome.stream = call.model, call.stream
        ex.call = call
        try:
            route = ex.route = resolve(ex.snap, call.model, ex.client)
            prompt = input_tokens(call)
            ex.est_tokens = prompt + (output_tokens(call) or 0)
            admission = ex.admission = self.runtime.limiter.admit(ex.client, ex.est_tokens,
                                                                  cost_hold(call, route, prompt))
        except GatewayError as exc:
            self.refuse(ex, exc)
            raise
        return admission.headers

    async def dispatch(self, ex: Exchange, guard: Disconnect) -> Whole | EventStream | None:
        """Find an upstream answer (see the module docstring for what comes back)."""
        call, route = ex.call, ex.route
        assert call is not None and route is not None, "admit() first"
        try:
            opened = await self.runtime.dispatcher.open(ex.snap, route, call.model, call, ex.est_tokens)
        except asyncio.CancelledError:
            guard.close()
            if not guard.absorb():
                raise
            self._fail(ex, CLIENT_CLOSED, None)
            return None
        except GatewayError as exc:
            guard.close()
            self._fail(ex, exc.status, exc.code)
            raise
        except Exception:
            guard.close()
            self._fail(ex, 500, "internal_error")
            raise
        ex.outcome.target, ex.outcome.key_label = opened.target, opened.reservation.state.label
        if opened.answer is not None:
            return EventStream(whole_as_stream(ex, call, opened, opened.answer, guard, self._settle))
        if call.stream:
            return EventStream(relay(ex, call, opened, guard, self._settle))
        guard.close()
        return self._whole(ex, call, opened)

    def _whole(self, ex: Exchange, call: Call, opened: Opened) -> Answer:
        ex.outcome.upstream_s = time.perf_counter() - ex.outcome.started
        try:
            answer = opened.adapter.parse_response(opened.body or b"", call)
        except (ValueError, TypeError):
            self.runtime.dispatcher.finish(opened, 0)
            error = ProviderError(f"Provider '{opened.target.provider.id}' sent an answer that is not JSON.")
            self._fail(ex, error.status, error.code)
            raise error from None
        self._settle(ex, opened, answer.usage)
        return answer

    def _settle(self, ex: Exchange, opened: Opened, usage: Usage) -> None:
        """A request that got an answer: the key's and the client's real usage and cost; the record."""
        rt = self.runtime
        rt.dispatcher.finish(opened, usage.total_tokens)
        ex.outcome.usage = usage
        if ex.admission is not None:
            ex.outcome.cost_usd = rt.limiter.settle(ex.admission, usage, opened.target.provider.pricing)
        record(ex.outcome, ex.snap.server.log_requests)

    def _fail(self, ex: Exchange, status: int, code: str | None) -> None:
        """A request that got no answer: release what was held; record it."""
        if ex.admission is not None:
            self.runtime.limiter.settle(ex.admission, None, None)
        ex.outcome.status, ex.outcome.error_code = status, code
        record(ex.outcome, ex.snap.server.log_requests)
