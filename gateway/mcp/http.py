"""A link to a streamable-HTTP MCP server, on the gateway's own upstream client.

Requests go through ``upstream.client.Upstream`` (the lean HTTP/1.1 transport by default): one
header dict per method and name is kept, so the transport joins and checks each request head
once. Answers are JSON or an SSE stream (progress notifications, then the answer).

Cancellation: closing an unfinished answer aborts its connection, which is how a 2026-07-28
server learns of it; a server of an older revision is also sent ``notifications/cancelled``.
A session the server no longer knows (404) is opened again once and the request retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import httpx
import orjson

from ..core.mcp import McpServerSpec
from ..core.request import UpstreamRequest
from ..core.sse import EventTooLarge, SSEDecoder
from ..upstream.client import AnswerTooLarge, Upstream, async_stream, read_answer
from .link import (
    INITIALIZE_PARAMS,
    Progress,
    Refused,
    Reply,
    TooLarge,
    Unreachable,
    initialized_revision,
    offers_modern,
    relay_progress,
    reply_of,
)
from .protocol import (
    METHOD_HEADER,
    MODERN,
    NAME_HEADER,
    SESSION_HEADER,
    VERSION_HEADER,
    RpcError,
    header_value,
    modern_meta,
)

log = logging.getLogger("gateway.mcp")
PROBE_LIMIT = 1 << 20  # bytes of a discover or initialize answer
MAX_HEAD_SETS = 1024
ACCEPT = "application/json, text/event-stream"


class SessionLost(Exception):
    """The server answered 404 to a request in a session: it no longer knows the session."""


class HttpLink:
    def __init__(self, spec: McpServerSpec, upstream: Upstream):
        assert spec.url is not None
        self.url = spec.url
        self.upstream = upstream
        self.era: str | None = None
        self.session: str | None = None
        self._base = {"accept": ACCEPT, "content-type": "application/json"}
        self._base.update({name.lower(): value for name, value in spec.headers})
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._heads: dict[tuple[str, str | None], dict[str, str]] = {}
        self._meta = modern_meta()
        self._background: set[asyncio.Task[None]] = set()

    # --- requests -------------------------------------------------------------------------
    async def request(self, method: str, params: dict[str, Any], *, name: str | None = None,
                      progress: Progress | None = None, timeout_s: float, limit: int) -> Reply:
        await self._ensure(timeout_s)
        try:
            return await self._exchange(method, params, name, progress, timeout_s, limit)
        except SessionLost:
            log.info("mcp session lost; opening a new one", extra={"url": self.url})
            self._forget()
            await self._ensure(timeout_s)
            return await self._exchange(method, params, name, progress, timeout_s, limit)

    def _headers(self, method: str, name: str | None) -> dict[str, str]:
        """The headers of a request (one dict per method and name: the transport caches its head)."""
        key = (method, name)
        headers = self._heads.get(key)
        if headers is None:
            if len(self._heads) >= MAX_HEAD_SETS:
                self._heads.clear()
            headers = dict(self._base)
            if self.era == MODERN:
                headers[VERSION_HEADER], headers[METHOD_HEADER] = MODERN, method
                if name is not None:
                    headers[NAME_HEADER] = header_value(name)
            elif self.era is not None:
                headers[VERSION_HEADER] = self.era
                if self.session is not None:
                    headers[SESSION_HEADER] = self.session
            self._heads[key] = headers
        return headers

    def _body(self, request_id: int, method: str, params: dict[str, Any], progress: Progress | None) -> bytes:
        meta: dict[str, Any] | None = self._meta if self.era == MODERN else None
        if progress is not None:
            meta = {**(meta or {}), "progressToken": request_id}
        if meta is not None:
            params = {**params, "_meta": {**(params.get("_meta") or {}), **meta}}
        return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})

    async def _exchange(self, method: str, params: dict[str, Any], name: str | None, progress: Progress | None,
                        timeout_s: float, limit: int) -> Reply:
        request_id = next(self._ids)
        request = UpstreamRequest("POST", self.url, self._headers(method, name),
                                  self._body(request_id, method, params, progress), shared_head=True)
        try:
            reply, _ = await self._send(request, request_id, progress, timeout_s, limit)
        except asyncio.CancelledError:
            if self.era != MODERN:
                self._later(self._notify("notifications/cancelled", {"requestId": request_id}))
            raise
        return reply

    async def _send(self, request: UpstreamRequest, request_id: int, progress: Progress | None, timeout_s: float,
                    limit: int) -> tuple[Reply, httpx.Headers]:
        try:
            response = await self.upstream.open(request, timeout_s)
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach it ({exc})") from None
        try:
            return await self._answer(response, request_id, progress, limit), response.headers
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"its answer broke off ({exc})") from None
        finally:
            await response.aclose()  # unread: aborts the connection (the cancel of a 2026-07-28 server)

    async def _answer(self, response: httpx.Response, request_id: int, progress: Progress | None,
                      limit: int) -> Reply:
        status = response.status_code
        if status == 404 and self.session is not None:
            raise SessionLost
        if status == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
            return await _read_events(response, request_id, progress, limit)
        try:
            raw = await read_answer(response, limit)
        except AnswerTooLarge as exc:
            raise TooLarge(f"its answer passed {limit} bytes ({exc})") from None
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        if status >= 400 and not (isinstance(message, dict) and isinstance(message.get("error"), dict)):
            raise Refused(f"it answered HTTP {status}")
        return reply_of(message, request_id, len(raw))

    # --- the revision and the session -----------------------------------------------------
    async def _ensure(self, timeout_s: float) -> None:
        if self.era is not None:
            return
        async with self._lock:
            if self.era is None:
                await self._negotiate(min(timeout_s, 30.0))

    async def _negotiate(self, timeout_s: float) -> None:
        """2026-07-28 when ``server/discover`` offers it; else the ``initialize`` handshake."""
        probe = {**self._base, VERSION_HEADER: MODERN, METHOD_HEADER: "server/discover"}
        body = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": self._meta}})
        try:
            reply, _ = await self._send(UpstreamRequest("POST", self.url, probe, body), 0, None, timeout_s, PROBE_LIMIT)
            if offers_modern(reply):
                self._set_era(MODERN, None)
                return
        except (RpcError, Refused):
            pass
        body = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INITIALIZE_PARAMS})
        reply, headers = await self._send(UpstreamRequest("POST", self.url, dict(self._base), body), 0, None,
                                          timeout_s, PROBE_LIMIT)
        self._set_era(initialized_revision(reply), headers.get(SESSION_HEADER))
        await self._notify("notifications/initialized", {})

    def _set_era(self, era: str, session: str | None) -> None:
        self.era, self.session = era, session
        self._heads.clear()
        log.info("mcp server connected", extra={"url": self.url, "revision": era, "session": session is not None})

    def _forget(self) -> None:
        self.era, self.session = None, None
        self._heads.clear()

    async def _notify(self, method: str, params: dict[str, Any]) -> None:
        """A notification (no answer expected beyond 202); failures are only logged."""
        headers = self._headers(method, None)
        body = orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})
        try:
            response = await self.upstream.open(UpstreamRequest("POST", self.url, headers, body), 10.0)
            await response.aclose()
        except httpx.HTTPError as exc:
            log.info("mcp notification not delivered", extra={"url": self.url, "method": method, "error": str(exc)})

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """End the session (2025-11-25 and earlier) and let pending notifications go out."""
        if self.session is not None:
            with contextlib.suppress(httpx.HTTPError):
                response = await self.upstream.open(
                    UpstreamRequest("DELETE", self.url, self._headers("DELETE", None), b""), 5.0)
                await response.aclose()
        self._forget()
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5.0)


async def _read_events(response: httpx.Response, request_id: int, progress: Progress | None,
                       limit: int) -> Reply:
    """The answer to ``request_id`` from an SSE stream, relaying progress notifications until it comes."""
    decoder = SSEDecoder()
    size = 0
    async for chunk in async_stream(response):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"its answer passed {limit} bytes")
        try:
            found = decoder.data(chunk)
        except EventTooLarge as exc:
            raise TooLarge(str(exc)) from None
        for data in found:
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(message, dict):
                continue
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return reply_of(message, request_id, size, streamed=True)
            if message.get("method") == "notifications/progress":
                await relay_progress(progress, message.get("params"))
    raise Unreachable("its event stream ended without an answer")
