"""The proxied OpenAI endpoints: chat completions, completions, embeddings.

One request: authenticate, read and check the body, resolve the model, admit under the
client's limits, let the dispatcher find an upstream answer, then answer whole or relay the
stream event by event, and count what was used.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator

import falcon
import falcon.asgi
import httpx

from ..auth import authenticate
from ..config.snapshot import ProviderKey, Snapshot, Target
from ..errors import GatewayError, InvalidRequest, ProviderError
from ..limits import Admission
from ..observability.usage import Outcome, record
from ..providers.registry import adapter_for
from ..providers.base import estimate_prompt_tokens, estimate_tokens, sse_error_event
from ..providers.openai import StreamRelay, translate_response
from ..routing.dispatch import Opened
from ..routing.resolve import resolve
from ..runtime import Runtime
from .common import DisconnectGuard, read_json

CLIENT_CLOSED = 499
MAX_MODEL_CHARS = 256


class Endpoint:
    def __init__(self, name: str, path: str, required: str, streams: bool):
        self.name, self.path, self.required, self.streams = name, path, required, streams


CHAT = Endpoint("chat", "/chat/completions", "messages", True)
COMPLETIONS = Endpoint("completions", "/completions", "prompt", True)
EMBEDDINGS = Endpoint("embeddings", "/embeddings", "input", False)


def check_body(body: dict[str, Any], endpoint: Endpoint) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("The 'model' field is required and must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"'model' is longer than {MAX_MODEL_CHARS} characters.", param="model")
    value = body.get(endpoint.required)
    if value is None:
        raise InvalidRequest(f"The '{endpoint.required}' field is required.", param=endpoint.required)
    if endpoint is CHAT:
        if not isinstance(value, list) or not value:
            raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
        for i, message in enumerate(value):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(f"messages[{i}] must be an object with a 'role'.", param=f"messages[{i}]")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    if stream and not endpoint.streams:
        raise InvalidRequest(f"Streaming is not available for {endpoint.path}.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidRequest(f"'{name}' must be a positive integer.", param=name)
    return model


def estimate_request_tokens(body: dict[str, Any], endpoint: Endpoint) -> int:
    if endpoint is CHAT:
        prompt = estimate_prompt_tokens(body.get("messages"))
    else:
        value = body.get(endpoint.required)
        prompt = estimate_tokens(value if isinstance(value, str) else str(value))
    return prompt + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


class ClosingStream:
    """Wraps the relay generator so Falcon's ``close()`` at the end of a response, whichever way it
    ends, runs the generator's cleanup at once (closing the upstream, recording usage)."""

    __slots__ = ("_generator",)

    def __init__(self, generator: AsyncIterator[bytes]):
        self._generator = generator

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._generator

    async def close(self) -> None:
        await self._generator.aclose()  # type: ignore[attr-defined]


class ProxyResource:
    def __init__(self, runtime: Runtime, endpoint: Endpoint):
        self.runtime = runtime
        self.endpoint = endpoint

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        started = time.perf_counter()
        rt = self.runtime
        snap = rt.snapshot
        request_id = req.get_header("x-request-id") or os.urandom(8).hex()
        resp.set_header("x-request-id", request_id)
        caller = authenticate(snap, req.get_header("authorization"), req.get_header("x-api-key"))
        outcome = Outcome(request_id, caller.client.id, self.endpoint.name, "", 200, started)
        try:
            body = await read_json(req, snap.max_body_bytes)
            model = outcome.model = check_body(body, self.endpoint)
            stream = outcome.stream = body.get("stream") is True
            route = resolve(snap, model, caller.client)
            est = estimate_request_tokens(body, self.endpoint)
            admission = rt.limiter.admit(caller.client, est)
        except GatewayError as exc:
            self._failed(outcome, exc, snap)
            raise
        for name, value in admission.headers.items():
            resp.set_header(name, value)

        endpoint = self.endpoint

        def build(target: Target, key: ProviderKey | None):
            adapter = adapter_for(target.provider.protocol)
            if endpoint is EMBEDDINGS:
                return adapter.build_passthrough_request(target, key, body, endpoint.path)
            return adapter.build_chat_request(target, key, body, stream, endpoint.path)

        guard = DisconnectGuard(req)
        try:
            opened = await rt.dispatcher.open(snap, route, model, build, est, read_body=not stream)
        except asyncio.CancelledError:
            guard.close()
            if not guard.absorb():
                raise
            rt.limiter.settle(admission, None, None)
            outcome.status = CLIENT_CLOSED
            record(outcome, snap.server.log_requests)
            resp.status = CLIENT_CLOSED
            return
        except GatewayError as exc:
            guard.close()
            rt.limiter.settle(admission, None, None)
            self._failed(outcome, exc, snap)
            raise
        except Exception:
            guard.close()
            rt.limiter.settle(admission, None, None)
            outcome.status, outcome.error_code = 500, "internal_error"
            record(outcome, snap.server.log_requests)
            raise
        outcome.target, outcome.key_label = opened.target, opened.reservation.state.label
        if stream:
            resp.content_type = "text/event-stream"
            resp.set_header("cache-control", "no-cache")
            resp.set_header("x-accel-buffering", "no")
            resp.stream = ClosingStream(self._relay(opened, body, model, admission, outcome, guard, snap))
            return
        guard.close()
        outcome.upstream_s = time.perf_counter() - started
        try:
            data, usage = translate_response(opened.body or b"", model, body)
        except (ValueError, TypeError):
            rt.dispatcher.finish(opened, 0)
            rt.limiter.settle(admission, None, None)
            exc = ProviderError(f"Provider '{opened.target.provider.id}' sent an answer that is not JSON.")
            self._failed(outcome, exc, snap)
            raise exc from None
        rt.dispatcher.finish(opened, usage.total_tokens)
        outcome.usage = usage
        outcome.cost_usd = rt.limiter.settle(admission, usage, opened.target.provider.pricing)
        record(outcome, snap.server.log_requests)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = data

    async def _relay(self, opened: Opened, body: dict[str, Any], model: str, admission: Admission,
                     outcome: Outcome, guard: DisconnectGuard, snap: Snapshot) -> AsyncIterator[bytes]:
        rt = self.runtime
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        relay = StreamRelay(model, wants_usage, body)
        first = True
        try:
            async for chunk in opened.response.stream:
                for event in relay.feed(chunk):
                    if first:
                        outcome.upstream_s = time.perf_counter() - outcome.started
                        first = False
                    yield event
            if not relay.done:
                outcome.error_code = "stream_interrupted"
                yield sse_error_event("The provider's stream ended before it was complete.")
        except asyncio.CancelledError:
            if not guard.absorb():
                raise
            outcome.status = CLIENT_CLOSED
        except httpx.TimeoutException:
            outcome.error_code = "upstream_timeout"
            yield sse_error_event("The provider stopped sending in time.", code="upstream_timeout")
        except httpx.HTTPError:
            outcome.error_code = "stream_interrupted"
            yield sse_error_event("The provider's stream broke off.")
        finally:
            guard.close()
            if guard.fired and outcome.status == 200:
                outcome.status = CLIENT_CLOSED  # the client left while Falcon was sending
            try:
                await opened.response.aclose()
            except Exception:
                pass
            usage = relay.final_usage()
            rt.dispatcher.finish(opened, usage.total_tokens)
            outcome.usage = usage
            outcome.cost_usd = rt.limiter.settle(admission, usage, opened.target.provider.pricing)
            record(outcome, snap.server.log_requests)

    def _failed(self, outcome: Outcome, exc: GatewayError, snap: Snapshot) -> None:
        outcome.status = exc.status
        outcome.error_code = exc.code
        record(outcome, snap.server.log_requests)
