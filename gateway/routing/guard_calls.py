"""How the guardrails that ask a service reach it: the engine (``gateway/guardrails/remote.py``)
does no I/O of its own and takes two callables in a ``Remote``; this builds them from what the
worker already has.

- ``post``: a webhook guard's POST, through the gateway's upstream client (its transport, its
  proxy settings); the answer read whole, at most ``MAX_ANSWER_BYTES``.
- ``moderate``: a moderation guard's call, through the dispatcher like any request: the guard's
  provider and model as a one-target route, so the provider's keys, their limits, cooldowns and
  failover between them apply, and the answer is read by the provider's adapter.

One ``GuardCalls`` per worker; ``remote(snapshot)`` gives the ``Remote`` of one request (the
moderation provider is looked up in the snapshot the request started with).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from ..config.snapshot import Snapshot
from ..core.call import MODERATIONS, Call
from ..core.request import UpstreamRequest
from ..core.targets import Route, Target
from ..core.tokens import estimate_tokens
from ..guardrails.remote import HttpAnswer, ModerationCall, Remote
from ..upstream.client import Upstream, read_answer
from .dispatch import Dispatcher

MAX_ANSWER_BYTES = 1 << 20  # a webhook's answer: a verdict or the replaced texts


class GuardCalls:
    def __init__(self, upstream: Upstream, dispatcher: Callable[[], Dispatcher]):
        self.upstream = upstream
        self.dispatcher = dispatcher  # read at each call: the runtime builds it again once the stores are open

    def remote(self, snapshot: Snapshot) -> Remote:
        return Remote(post=self.post, moderate=partial(self.moderate, snapshot))

    async def post(self, request: UpstreamRequest, timeout_s: float) -> HttpAnswer:
        response = await self.upstream.open(request, timeout_s)
        try:
            body = await read_answer(response, MAX_ANSWER_BYTES)
        finally:
            with contextlib.suppress(Exception):  # already closed once read; aborted on a failure
                await response.aclose()
        return HttpAnswer(response.status_code, body)

    async def moderate(self, snapshot: Snapshot, call: ModerationCall) -> Any:
        provider = snapshot.providers.get(call.provider)
        if provider is None:  # the config names it; a reload may have removed it since
            raise LookupError(f"provider '{call.provider}' is not configured")
        route = Route("fallback", (Target(provider, call.model),), (1.0,))
        request = Call(MODERATIONS, "/moderations", call.body(), call.model)
        dispatcher = self.dispatcher()
        opened = await dispatcher.open(snapshot, route, call.model, request,
                                       sum(estimate_tokens(text) for text in call.texts))
        usage = None
        try:
            answer = opened.adapter.parse_response(opened.body or b"", request)
            usage = answer.usage
            return answer.data
        finally:
            await dispatcher.finish(opened, usage)
