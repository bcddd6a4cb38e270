"""Answering one MCP request: a JSON body, or an event stream once progress has to be relayed.

A request that asked for progress (``_meta.progressToken``) is answered in JSON if its result
comes before any progress; else the answer becomes an SSE stream at the first progress
notification: the notifications as they come, then the response, then the end of the stream.
Closing the stream early (the client left) cancels the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import falcon
import falcon.asgi
import orjson

from ...errors import GatewayError
from ...mcp.link import Progress
from ...mcp.protocol import INTERNAL_ERROR, REQUEST_CANCELLED, RpcError, notification, result_body
from ...mcp.sse import SSE_HEADERS, frame
from ...pipeline import Disconnect, Stream

Work = Callable[[Progress | None], Awaitable[dict[str, Any]]]


def as_rpc_error(exc: BaseException) -> RpcError:
    """The JSON-RPC error a failure is answered with."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        return RpcError(REQUEST_CANCELLED, "Request cancelled")
    if isinstance(exc, GatewayError):
        return RpcError(INTERNAL_ERROR, exc.message)
    return RpcError(INTERNAL_ERROR, "The gateway hit an internal error.")


def send_error(resp: falcon.asgi.Response, exc: RpcError, request_id: Any) -> None:
    resp.status = exc.status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(exc.body(request_id))


def send_result(resp: falcon.asgi.Response, request_id: Any, result: dict[str, Any]) -> None:
    resp.content_type = falcon.MEDIA_JSON
    resp.data = result_body(request_id, result)


class ProgressRelay:
    """The client's progress token, and the notifications waiting to be sent."""

    def __init__(self, token: str | int):
        self.token = token
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __call__(self, value: float, total: float | None, message: str | None) -> None:
        params: dict[str, Any] = {"progressToken": self.token, "progress": value}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        self.queue.put_nowait(notification("notifications/progress", params))


async def _first(task: asyncio.Task[Any], queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any] | None:
    """The next notification, or None once ``task`` is done and none is waiting."""
    if not queue.empty():
        return queue.get_nowait()
    if task.done():
        return None
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    return queue.get_nowait() if not queue.empty() else None


async def answer_with_progress(resp: falcon.asgi.Response, request_id: Any, work: Work, token: str | int,
                               guard: Disconnect, running: Callable[[asyncio.Task[Any] | None], None]) -> None:
    """Run ``work`` relaying progress: JSON if it ends first, else an SSE stream (see the module)."""
    relay = ProgressRelay(token)
    task = asyncio.ensure_future(work(relay))
    running(task)
    try:
        first = await _first(task, relay.queue)
    except asyncio.CancelledError:
        task.cancel()
        running(None)
        guard.close()
        if guard.absorb():
            return
        raise
    if first is None:
        running(None)
        guard.close()
        try:
            send_result(resp, request_id, task.result())
        except (Exception, asyncio.CancelledError) as exc:
            send_error(resp, as_rpc_error(exc), request_id)
        return
    resp.content_type = "text/event-stream"
    for name, value in SSE_HEADERS.items():
        resp.set_header(name, value)
    resp.stream = Stream(_events(first, relay.queue, task, request_id, guard, running))


async def _events(first: dict[str, Any], queue: asyncio.Queue[dict[str, Any]], task: asyncio.Task[dict[str, Any]],
                  request_id: Any, guard: Disconnect,
                  running: Callable[[asyncio.Task[Any] | None], None]) -> AsyncGenerator[bytes, None]:
    try:
        yield frame(first)
        while (event := await _first(task, queue)) is not None:
            yield frame(event)
        try:
            yield frame({"jsonrpc": "2.0", "id": request_id, "result": task.result()})
        except (Exception, asyncio.CancelledError) as exc:
            yield frame(as_rpc_error(exc).body(request_id))
    except asyncio.CancelledError:
        if not guard.absorb():
            raise
    finally:
        guard.close()
        running(None)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)
