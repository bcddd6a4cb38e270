"""The rest of OpenAI's surface on the one pipeline.

Images, audio, moderations, responses, files, assistants and threads run through the same
auth → admit → dispatch → settle/record as chat; this module adds what they need beyond it:

- which endpoint families a provider serves (``serves``): its protocol's (the provider
  type table's ``FAMILIES``), narrowed by the provider's ``endpoints`` in the config. A route is cut to the targets that
  serve the family; none left is a 400 naming the provider(s) (``UnsupportedEndpoint``);
- routes for calls that name no model (a file upload, a thread): the first provider in the
  config the client may use that serves the family; and routes pinned to the one provider key
  that holds an object (``pinned_route``; the pins, kept in the configured store: ``affinity.py``);
- answers relayed as bytes with the upstream's content type (``dispatch_raw``): audio streamed
  back as it comes, a transcription in text, a file's content; JSON answers are read for usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..core.call import CHAT, RESPONSES
from ..core.targets import ProviderSpec, Route, Target
from ..core.usage import Usage
from ..errors import InvalidRequest
from ..routing.dispatch import UpstreamAnswer
from ..routing.resolve import resolve
from ..server.runtime import Runtime
from ..upstream.client import async_stream
from .affinity import AffinityStore, Pin, StoreAffinity
from .context import CLIENT_CLOSED, Admitted, Disconnect, Exchange, Stream
from .core import Pipeline


class UnsupportedEndpoint(InvalidRequest):
    """No provider of the route can serve the endpoint (400, naming them)."""

    code = "unsupported_endpoint"


def serves(provider: ProviderSpec, family: str) -> bool:
    """Whether ``provider`` serves the endpoint ``family``: its protocol can, and its config allows it."""
    return family in provider.families


def _described(providers: list[ProviderSpec]) -> str:
    return ", ".join(f"'{p.id}' (type {p.type})" for p in providers)


def only_serving(route: Route, family: str, what: str) -> Route:
    """``route`` cut to the targets whose provider serves ``family``; ``UnsupportedEndpoint`` if none."""
    pairs = [(t, w) for t, w in zip(route.targets, route.weights, strict=True) if serves(t.provider, family)]
    if not pairs:
        providers = list({t.provider.id: t.provider for t in route.targets}.values())
        raise UnsupportedEndpoint(f"Provider {_described(providers)} cannot serve {what}."
                                  if len(providers) == 1 else
                                  f"None of the providers {_described(providers)} can serve {what}.")
    if len(pairs) == len(route.targets):
        return route
    return Route(route.strategy, tuple(t for t, _ in pairs), tuple(w for _, w in pairs))


@dataclass(slots=True)
class RawWhole:
    """A whole answer passed to the client as it came (JSON re-written only for its ``model``)."""

    content_type: str
    body: bytes
    usage: Usage
    data: dict[str, Any] | None  # the JSON answer, parsed (None: not JSON)
    pin: Pin  # the provider key that answered (where objects it created live)


class SurfacePipeline(Pipeline):
    """``Pipeline`` with the routes and raw answers of the rest of the surface (see the module doc)."""

    def __init__(self, runtime: Runtime, affinity: AffinityStore | None = None):
        super().__init__(runtime)
        # the pins live in the configured runtime store (shared by workers and replicas)
        self.affinity: AffinityStore = affinity if affinity is not None else StoreAffinity(
            lambda: runtime.stores.runtime, lambda: runtime.guard is not None and runtime.guard.degraded)

    def route_for(self, exchange: Exchange, model: str, family: str, what: str) -> Route:
        """The client's route for ``model``, cut to the targets that serve ``family``."""
        return only_serving(resolve(exchange.snapshot, model, exchange.client), family, what)

    def responses_route(self, exchange: Exchange, model: str) -> tuple[bool, Route]:
        """(native, route) for ``/v1/responses``: passed through when every target serves it, else
        translated to chat for all of them (the route then cut to the targets that serve chat)."""
        route = resolve(exchange.snapshot, model, exchange.client)
        if all(serves(t.provider, RESPONSES) for t in route.targets):
            return True, route
        return False, only_serving(route, CHAT, "/v1/responses")

    @staticmethod
    def described(route: Route) -> str:
        """The route's providers, for an error: ``'a' (type anthropic), 'b' (type openai)``."""
        return "provider " + _described(list({t.provider.id: t.provider for t in route.targets}.values()))

    def default_route(self, exchange: Exchange, family: str, what: str) -> Route:
        """For a call naming no model: the first provider in the config the client may use that
        serves ``family`` (its model in the route is the family's name: it is never sent)."""
        allowed = exchange.client.allowed_providers
        usable = [p for p in exchange.snapshot.providers.values() if allowed is None or p.id in allowed]
        for provider in usable:
            if serves(provider, family):
                return Route(exchange.snapshot.routing.strategy, (Target(provider, family),), (provider.weight,))
        if not usable:
            raise InvalidRequest(f"This key may use no provider, so it cannot call {what}.")
        raise UnsupportedEndpoint(f"None of the providers this key may use can serve {what}: "
                                  f"{_described(usable)}.")

    def pinned_route(self, exchange: Exchange, pin: Pin, object_id: str, model: str | None, family: str,
                     what: str) -> Route:
        """A route to exactly the provider key that holds ``object_id`` (``model``: one the body
        names, which that provider must serve)."""
        provider = exchange.snapshot.providers.get(pin.provider_id)
        allowed = exchange.client.allowed_providers
        if provider is None or (allowed is not None and provider.id not in allowed):
            raise InvalidRequest(f"'{object_id}' lives on provider '{pin.provider_id}', which this key may not "
                                 "use or which is no longer configured.", param="id")
        if not serves(provider, family):
            raise UnsupportedEndpoint(f"Provider {_described([provider])} cannot serve {what}.")
        keys = tuple(k for k in provider.keys if k.ident == pin.key_ident)
        if pin.key_ident is not None and not keys:
            raise InvalidRequest(f"'{object_id}' was created through a key of provider '{provider.id}' that is no "
                                 "longer configured; only that key can reach it.", param="id")
        upstream_model = family
        if model is not None:
            targets = [t for t in resolve(exchange.snapshot, model, exchange.client).targets
                       if t.provider.id == provider.id]
            if not targets:
                raise InvalidRequest(f"The model '{model}' is not served by provider '{provider.id}', where "
                                     f"'{object_id}' lives.", param="model")
            upstream_model = targets[0].model
        pinned = dataclasses.replace(provider, keys=keys) if keys else provider
        return Route("fallback", (Target(pinned, upstream_model),), (1.0,))

    async def dispatch_raw(self, admitted: Admitted, guard: Disconnect) -> RawWhole | Stream | None:
        """Like ``dispatch``, for answers the client gets as they came: a whole answer (JSON read
        for its usage) or, for a stream call, the bytes as they arrive. None: the client left."""
        opened = await self.open(admitted, guard)
        if opened is None:
            return None
        call, exchange = admitted.call, admitted.exchange
        content_type = opened.response.headers.get("content-type") or "application/octet-stream"
        if call.stream:
            return Stream(self._relay_bytes(admitted, opened, guard), content_type)
        guard.close()
        exchange.outcome.upstream_s = time.perf_counter() - exchange.outcome.started
        raw = opened.body or b""
        data: dict[str, Any] | None = None
        usage = Usage(0, 0, exact=False)
        if "json" in content_type.lower():
            with contextlib.suppress(ValueError, TypeError):
                answer = opened.adapter.parse_response(raw, call)
                data, usage = answer.data, answer.usage
                raw = orjson.dumps(data)
        await self._settle(admitted, opened, usage)
        pin = Pin(opened.target.provider.id, opened.key.ident if opened.key is not None else None)
        return RawWhole(content_type, raw, usage, data, pin)

    async def _relay_bytes(self, admitted: Admitted, opened: UpstreamAnswer,
                           guard: Disconnect) -> AsyncGenerator[bytes, None]:
        """The upstream's body as it comes. A body that breaks off is not ended cleanly: the error
        is raised, so the server aborts the connection and the client sees a cut answer."""
        outcome = admitted.exchange.outcome
        first = True
        try:
            async for chunk in async_stream(opened.response):
                if first:
                    outcome.upstream_s = time.perf_counter() - outcome.started
                    first = False
                yield chunk
        except asyncio.CancelledError:
            if not guard.absorb():
                raise
            outcome.status = CLIENT_CLOSED
        except httpx.HTTPError:
            outcome.error_code = "stream_interrupted"
            raise
        finally:
            guard.close()
            if guard.fired and outcome.status == 200:
                outcome.status = CLIENT_CLOSED
            with contextlib.suppress(Exception):
                await opened.response.aclose()
            await asyncio.shield(self._settle(admitted, opened, Usage(0, 0, exact=False)))
