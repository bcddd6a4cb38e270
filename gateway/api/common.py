"""Helpers the endpoint modules share: bounded JSON bodies and client-disconnect detection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import falcon.asgi
import orjson

from ..errors import GatewayError, InvalidRequest, RequestTimeout, RequestTooLarge
from ..observability.ids import new_request_id

log = logging.getLogger("gateway.http")

RECEIVE_KEY = "gateway.receive"
CLIENT_GONE_KEY = "gateway.client_gone"
# How deep a request body may nest. orjson reads 1024 levels but writes only 254, and the body is
# written again for the upstream (some adapters wrap it a level or two deeper): a generous bound
# well inside what can be sent on, so a deep body is a 400 here and not a 500 later.
MAX_JSON_DEPTH = 128

# An ASGI ``receive`` callable: Granian's returns a future, other servers' are coroutine functions.
Receive = Callable[[], Awaitable[dict[str, Any]]]


def stream_to(resp: falcon.asgi.Response, stream: AsyncIterator[bytes], content_type: str) -> None:
    """``stream`` as the response's body (SSE events as they come), with the headers that keep
    browsers and proxies (nginx's ``X-Accel-Buffering``) from caching or buffering it."""
    resp.content_type = content_type
    resp.set_header("cache-control", "no-cache")
    resp.set_header("x-accel-buffering", "no")
    resp.stream = stream


def request_id_of(req: falcon.asgi.Request, resp: falcon.asgi.Response) -> str:
    """The client's ``X-Request-Id``, or a new one; echoed on the response whatever it ends in."""
    request_id = req.get_header("x-request-id") or new_request_id()
    resp.set_header("x-request-id", request_id)
    return request_id


async def read_json(req: falcon.asgi.Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object: at most ``limit`` bytes, nested at most
    ``MAX_JSON_DEPTH`` levels. Anything else is a 4xx, never a 500 (a body that stalls is a 408
    from ``bounded_body``)."""
    return parse_json_object(await read_body(req, limit))


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body; 413 past ``limit`` bytes."""
    length = req.content_length
    if length is not None and length > limit:
        raise RequestTooLarge(f"The request body is {length} bytes; the limit is {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    # a body needs at least MAX_JSON_DEPTH brackets to be that deep: most bodies skip the walk
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nested_deeper_than(data, MAX_JSON_DEPTH):
        raise InvalidRequest(f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.")
    return data


def nested_deeper_than(value: object, limit: int) -> bool:
    """True if objects and arrays in ``value`` nest more than ``limit`` levels (``value`` is 1)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class DisconnectGuard:
    """Cancels the request's task when the client goes away, so the upstream call is cancelled.

    Start it after the body is read. ``fired`` tells a ``CancelledError`` caused by the client
    leaving from any other; ``absorb()`` clears that cancellation so the handler ends quietly.
    Granian's ``receive()`` returns a future, so waiting for ``http.disconnect`` costs one
    callback, not a task; other servers' coroutines are wrapped in a task.
    """

    __slots__ = ("_receive", "_scope", "_task", "_pending", "_closed", "fired")

    def __init__(self, req: falcon.asgi.Request):
        self._scope = req.scope
        self._receive: Receive | None = req.scope.get(RECEIVE_KEY)
        self._task = asyncio.current_task()
        self._pending: Any = None
        self._closed = False
        self.fired = False
        if self._receive is not None:
            self._arm()

    def _arm(self) -> None:
        if self._receive is None:  # never armed without one
            return
        waiting = self._receive()
        if not hasattr(waiting, "add_done_callback"):
            waiting = asyncio.ensure_future(waiting)
        self._pending = waiting
        waiting.add_done_callback(self._on_message)

    def _on_message(self, waiting: Any) -> None:
        if self._closed:
            return
        try:
            message = waiting.result()
        except BaseException:  # the server cancelled or failed the receive: the connection is gone
            message = {"type": "http.disconnect"}
        if message.get("type") == "http.disconnect":
            self.fired = True
            self._scope[CLIENT_GONE_KEY] = True
            if self._task is not None:
                self._task.cancel()
        else:
            self._arm()

    def absorb(self) -> bool:
        """True (and the cancellation undone) if the client left; False for any other cancel."""
        if self.fired and self._task is not None:
            self._task.uncancel()
            return True
        return False

    def close(self) -> None:
        self._closed = True
        if isinstance(self._pending, asyncio.Task) and not self._pending.done():
            self._pending.cancel()
        self._pending = None


def wrap_receive(app: Any) -> Any:
    """ASGI wrapper that keeps ``receive`` in the scope for ``DisconnectGuard``, swallows the
    cancellation the guard caused when its client left, and names HTTP/1.0 as ASGI does.

    Granian reports an HTTP/1.0 request (what nginx's ``proxy_pass`` sends by default) with
    ``http_version "1"``; Falcon accepts only the spec's ``"1.0"``, ``"1.1"``, ``"2"``, ``"3"``
    and would answer 500.
    """

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope[RECEIVE_KEY] = receive
        if scope.get("http_version") == "1":
            scope["http_version"] = "1.0"
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            # our own cancellation of a request whose client left: nothing to report to the server
            task = asyncio.current_task()
            if scope.get(CLIENT_GONE_KEY) and task is not None and task.cancelling():
                task.uncancel()
                return
            raise

    return asgi


def bounded_body(app: Any, timeout_s: Callable[[], float]) -> Any:
    """ASGI wrapper: the whole request body must arrive within ``timeout_s()`` seconds of the
    request's head (``server.body_timeout_s``), or the client gets 408 ``request_timeout``.

    One deadline for the whole body, so a client trickling bytes cannot hold the connection
    either. It bounds every ``receive()`` until the body is complete, Falcon's own first one
    included (Falcon waits for the first body event before it routes the request, so a client
    that sends headers and nothing else never reaches a handler). Afterwards ``receive()`` is
    passed through untouched: waiting for ``http.disconnect`` is not bounded.
    """

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        seconds = timeout_s()
        deadline = asyncio.get_running_loop().time() + seconds
        body_done = False

        async def bounded() -> dict[str, Any]:
            nonlocal body_done
            try:
                async with asyncio.timeout_at(deadline):
                    message: dict[str, Any] = await receive()
            except TimeoutError:
                raise RequestTimeout(f"The request body did not arrive within {seconds:g} s "
                                     "(server.body_timeout_s).") from None
            body_done = message.get("type") != "http.request" or not message.get("more_body")
            return message

        def bounded_receive() -> Any:
            return receive() if body_done else bounded()

        try:
            await app(scope, bounded_receive, send)
        except RequestTimeout as exc:  # from Falcon's first receive(), before any handler ran
            log.info("request body timed out", extra={"path": scope.get("path"), "timeout_s": seconds})
            await send_error(send, exc)

    return asgi


async def send_error(send: Any, exc: GatewayError) -> None:
    """Answer with ``exc`` straight over ASGI (for errors raised outside Falcon's handlers)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": exc.to_body()})
