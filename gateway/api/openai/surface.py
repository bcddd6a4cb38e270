"""The rest of OpenAI's surface: images, audio, moderations, responses, files, assistants, threads.

Each resource parses what it needs to route (the ``model``; for the stateful endpoints the ids
the call names), runs the pipeline (``SurfacePipeline``) and writes the answer as the upstream
sent it. Calls that name an object created earlier go to the provider key that created it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon
import falcon.asgi

from ...core.call import ASSISTANTS, AUDIO, FILES, RESPONSES, THREADS, Call
from ...core.usage import Answer
from ...errors import GatewayError, InvalidRequest
from ...pipeline import Admitted, Exchange, Pin, RawWhole, Stream, SurfacePipeline, is_object_id
from ...pipeline.affinity import AffinityStore
from ..common import DisconnectGuard, read_json, request_id_of
from .mcp_flow import responses_call, serve
from .mcp_request import has_mcp_tools
from .multipart import UploadBody, open_upload
from .parse import model_of as checked_model
from .render import render
from .responses_chat import responses_to_chat
from .responses_render import chat_to_response
from .responses_stream import as_response_events, native_events

# body fields that name objects a call works on (their pins route it)
_REFERENCES = ("assistant_id", "thread_id", "file_id", "file_ids", "vector_store_ids")
_MAX_REFERENCE_DEPTH = 6
_MAX_REMEMBERED = 100  # ids remembered from one list answer
_FAMILY_OF_SEGMENT = {"files": FILES, "assistants": ASSISTANTS, "threads": THREADS}


@dataclass(frozen=True, slots=True)
class SurfaceEndpoint:
    name: str  # the endpoint in the access log
    family: str  # the operation (``core/call.py``)
    path: str  # under the API root, as OpenAI names it
    model_required: bool = True
    binary_stream: bool = False  # the answer is streamed back as it comes (audio)


IMAGES_ENDPOINT = SurfaceEndpoint("images.generations", "images", "/images/generations")
MODERATIONS_ENDPOINT = SurfaceEndpoint("moderations", "moderations", "/moderations", model_required=False)
SPEECH_ENDPOINT = SurfaceEndpoint("audio.speech", AUDIO, "/audio/speech", binary_stream=True)
TRANSCRIPTIONS_ENDPOINT = SurfaceEndpoint("audio.transcriptions", AUDIO, "/audio/transcriptions")
TRANSLATIONS_ENDPOINT = SurfaceEndpoint("audio.translations", AUDIO, "/audio/translations")


async def begin(pipeline: SurfacePipeline, name: str, req: falcon.asgi.Request,
                resp: falcon.asgi.Response) -> Exchange:
    exchange = await pipeline.begin(name, request_id_of(req, resp), req.get_header("authorization"),
                                    req.get_header("x-api-key"))
    if pipeline.tracing is not None:
        pipeline.trace(exchange, req.get_header("traceparent"), req.get_header("tracestate"))
    return exchange


def model_of(fields: dict[str, Any], required: bool) -> str | None:
    """The checked ``model`` of a form or body; None when it is absent and not ``required``."""
    if fields.get("model") is None and not required:
        return None
    return checked_model(fields)


def render_raw(resp: falcon.asgi.Response, result: RawWhole | Stream | None) -> None:
    if result is None:
        render(resp, None)
    elif isinstance(result, RawWhole):
        resp.content_type = result.content_type
        resp.data = result.body
    else:
        resp.content_type = result.content_type
        resp.set_header("x-accel-buffering", "no")
        resp.stream = result


async def _admit(pipeline: SurfacePipeline, exchange: Exchange, resp: falcon.asgi.Response, call: Call,
                 route: Any) -> Admitted:
    admitted = await pipeline.admit(exchange, call, route)
    for name, value in admitted.headers.items():
        resp.set_header(name, value)
    return admitted


def _refused(pipeline: SurfacePipeline, exchange: Exchange, error: GatewayError, upload: UploadBody | None) -> None:
    """A request refused before it was admitted: its upload closed, and recorded."""
    if upload is not None:
        upload.close()
    pipeline.refuse(exchange, error)


class _NoGuard:
    """For uploads: the body is still being read while the upstream is called, so the client's
    leaving is not watched (it ends the upload, which ends the upstream request)."""

    fired = False

    def absorb(self) -> bool:
        return False

    def close(self) -> None:
        return None


class JsonSurfaceResource:
    """``POST /v1/images/generations``, ``/v1/moderations``, ``/v1/audio/speech``: a JSON body, passed on."""

    def __init__(self, pipeline: SurfacePipeline, endpoint: SurfaceEndpoint):
        self.pipeline = pipeline
        self.endpoint = endpoint

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pipeline, endpoint = self.pipeline, self.endpoint
        what = "/v1" + endpoint.path
        exchange = await begin(pipeline, endpoint.name, req, resp)
        try:
            body = await read_json(req, exchange.snapshot.max_body_bytes)
            model = model_of(body, endpoint.model_required)
            route = (pipeline.route_for(exchange, model, endpoint.family, what) if model is not None
                     else pipeline.default_route(exchange, endpoint.family, what))
        except GatewayError as exc:
            pipeline.refuse(exchange, exc)
            raise
        call = Call(endpoint.family, endpoint.path, body, model or endpoint.family, stream=endpoint.binary_stream)
        admitted = await _admit(pipeline, exchange, resp, call, route)
        render_raw(resp, await pipeline.dispatch_raw(admitted, DisconnectGuard(req)))


class UploadResource:
    """``POST /v1/audio/transcriptions`` and ``/translations``: multipart, its ``model`` read from
    the form, the body streamed through (``multipart.py``)."""

    def __init__(self, pipeline: SurfacePipeline, endpoint: SurfaceEndpoint):
        self.pipeline = pipeline
        self.endpoint = endpoint

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pipeline, endpoint = self.pipeline, self.endpoint
        exchange = await begin(pipeline, endpoint.name, req, resp)
        upload: UploadBody | None = None
        try:
            upload, fields = await open_upload(aiter(req.stream), req.content_type or "", req.content_length,
                                               exchange.snapshot.max_body_bytes, frozenset({"model"}))
            model = model_of(fields, True)
            assert model is not None
            route = pipeline.route_for(exchange, model, endpoint.family, "/v1" + endpoint.path)
            call = Call(endpoint.family, endpoint.path, {}, model, upload=upload)
        except GatewayError as exc:
            _refused(pipeline, exchange, exc, upload)
            raise
        try:
            admitted = await _admit(pipeline, exchange, resp, call, route)
            render_raw(resp, await pipeline.dispatch_raw(admitted, _NoGuard()))
        finally:
            upload.close()


class ResponsesResource:
    """``POST /v1/responses``: passed through where every provider of the route serves it (with the
    client's session headers), else translated to chat and back (``responses_chat.py``,
    ``responses_render.py``, ``responses_stream.py``); with MCP tools, the gateway's tool loop
    (``mcp_flow.py``)."""

    def __init__(self, pipeline: SurfacePipeline):
        self.pipeline = pipeline

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pipeline = self.pipeline
        exchange = await begin(pipeline, RESPONSES, req, resp)
        try:
            body = await read_json(req, exchange.snapshot.max_body_bytes)
            model = model_of(body, True)
            assert model is not None
            stream = body.get("stream", False)
            if stream is not None and not isinstance(stream, bool):
                raise InvalidRequest("'stream' must be true or false.", param="stream")
            tools = has_mcp_tools(body)
            native, route = (False, None) if tools else pipeline.responses_route(exchange, model)
            if tools:  # the gateway runs them: never passed through (mcp_flow.py)
                call, route, found = responses_call(pipeline, exchange, body, model, stream is True)
            elif native:
                call = Call(RESPONSES, "/responses", body, model, stream is True, headers=passed_headers(req))
            else:
                chat, dropped = responses_to_chat(body)
                call = Call("chat", "/chat/completions", chat, model, stream is True, wants_usage=True,
                            dropped=dropped, translated=True)
        except GatewayError as exc:
            pipeline.refuse(exchange, exc)
            raise
        if tools:
            await serve(pipeline, req, resp, exchange, call, route, found, body)
            return
        admitted = await _admit(pipeline, exchange, resp, call, route)
        result = await pipeline.dispatch(admitted, DisconnectGuard(req), req.get_header("cache-control"))
        if exchange.outcome.cache is not None:  # the response cache applied (Responses over chat): hit | miss
            resp.set_header("x-cache", exchange.outcome.cache)
        if result is None or isinstance(result, Answer) and native:
            render(resp, result)
        elif isinstance(result, Answer):
            render(resp, Answer(chat_to_response(result.data, result.usage, body), result.usage))
        elif native:
            render(resp, native_events(result))
        else:
            render(resp, Stream(as_response_events(aiter(result), body, call.body, result.close)))


# client headers a Responses upstream reads (the session and turn a request belongs to, betas);
# never the client's key
_PASSED = frozenset({"openai-beta", "session-id", "thread-id", "originator", "x-client-request-id"})


def passed_headers(req: falcon.asgi.Request) -> tuple[tuple[str, str], ...]:
    """The headers passed on to a Responses-native upstream: ``_PASSED`` and ``x-codex-*``."""
    return tuple((name.lower(), value) for name, value in req.headers.items()
                 if name.lower() in _PASSED or name.lower().startswith("x-codex-"))


def referenced_ids(path_ids: list[str], body: object) -> list[str]:
    """The object ids a call names: in its path, then in the body's reference fields."""
    found = [i for i in path_ids if is_object_id(i)]
    stack: list[tuple[object, int]] = [(body, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_REFERENCE_DEPTH:
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            if key in _REFERENCES:
                found += [v for v in (child if isinstance(child, list) else [child]) if is_object_id(v)]
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return found


def answer_ids(data: dict[str, Any]) -> list[str]:
    """The ids of objects a stateful answer shows (an object, its thread; a list's items)."""
    ids = [data[k] for k in ("id", "thread_id") if is_object_id(data.get(k))]
    items = data.get("data") if data.get("object") == "list" else None
    if isinstance(items, list):
        for item in items[:_MAX_REMEMBERED]:
            if isinstance(item, dict) and is_object_id(item.get("id")):
                ids.append(item["id"])
    return ids


def upstream_path(path: str) -> str:
    """The path under the API root: ``/api/v1/files/x`` and ``/v1/files/x`` -> ``/files/x``."""
    for prefix in ("/api/v1/", "/v1/"):
        if path.startswith(prefix):
            return path[len(prefix) - 1:]
    return path


class StatefulResource:
    """``/v1/files``, ``/v1/assistants``, ``/v1/threads`` and what lies under them: passed through,
    each call naming an object pinned to the provider key that created it. The subclasses below
    answer the methods their paths have."""

    def __init__(self, pipeline: SurfacePipeline):
        self.pipeline = pipeline

    async def _serve(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, method: str) -> None:
        pipeline = self.pipeline
        path = upstream_path(req.path)
        segments = path.strip("/").split("/")
        family = _FAMILY_OF_SEGMENT[segments[0]]
        exchange = await begin(pipeline, family, req, resp)
        upload: UploadBody | None = None
        try:
            body, upload = await self._body(req, method, exchange.snapshot.max_body_bytes)
            model = model_of(body, False)
            route = await self._route(exchange, family, referenced_ids(segments[1:], body), model, "/v1" + path)
            beta = req.get_header("openai-beta")
            call = Call(family, path, body, model or family, stream=body.get("stream") is True, method=method,
                        query=req.query_string, upload=upload, headers=(("openai-beta", beta),) if beta else ())
        except GatewayError as exc:
            _refused(pipeline, exchange, exc, upload)
            raise
        try:
            admitted = await _admit(pipeline, exchange, resp, call, route)
            result = await pipeline.dispatch_raw(admitted, _NoGuard() if upload is not None else DisconnectGuard(req))
        finally:
            if upload is not None:
                upload.close()
        if isinstance(result, RawWhole) and result.data is not None:
            await remember(pipeline.affinity, method, result.data, result.pin)
        render_raw(resp, result)

    async def _body(self, req: falcon.asgi.Request, method: str,
                    limit: int) -> tuple[dict[str, Any], UploadBody | None]:
        if method != "POST":
            return {}, None
        if (req.content_type or "").lower().startswith("multipart/"):
            upload, _ = await open_upload(aiter(req.stream), req.content_type or "", req.content_length, limit,
                                          frozenset())
            return {}, upload
        if not req.content_length and req.get_header("transfer-encoding") is None:
            return {}, None
        return await read_json(req, limit), None

    async def _route(self, exchange: Exchange, family: str, ids: list[str], model: str | None, what: str) -> Any:
        pipeline = self.pipeline
        pins = [(i, pin) for i in ids if (pin := await pipeline.affinity.lookup(i)) is not None]
        if len({pin for _, pin in pins}) > 1:
            raise InvalidRequest("This call names objects created through different provider keys ("
                                 + ", ".join(i for i, _ in pins) + "); they cannot be used together.")
        if pins:
            object_id, pin = pins[0]
            return pipeline.pinned_route(exchange, pin, object_id, model, family, what)
        if model is not None:
            return pipeline.route_for(exchange, model, family, what)
        return pipeline.default_route(exchange, family, what)


async def remember(affinity: AffinityStore, method: str, data: dict[str, Any], pin: Pin) -> None:
    """Pin the objects an answer shows to the key that answered; forget one it deleted."""
    if method == "DELETE" and data.get("deleted") is True and is_object_id(data.get("id")):
        await affinity.forget(data["id"])
        return
    for object_id in answer_ids(data):
        await affinity.remember(object_id, pin)


class StatefulCollection(StatefulResource):
    """A list (GET) and where objects are created (POST)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **ids: str) -> None:
        await self._serve(req, resp, "GET")

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **ids: str) -> None:
        await self._serve(req, resp, "POST")


class StatefulObject(StatefulCollection):
    """One object: retrieve (GET), modify (POST), delete (DELETE)."""

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **ids: str) -> None:
        await self._serve(req, resp, "DELETE")


class StatefulGet(StatefulResource):
    """A read-only view (a file's content, a run's steps)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **ids: str) -> None:
        await self._serve(req, resp, "GET")


class StatefulAction(StatefulResource):
    """An action (cancel a run, submit tool outputs, create a thread and run it)."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **ids: str) -> None:
        await self._serve(req, resp, "POST")
