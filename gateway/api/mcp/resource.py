"""``/mcp`` and ``/mcp/{server_id}``: the gateway as a streamable-HTTP MCP server.

The caller is a client key (``Authorization: Bearer``), checked before anything else; upstream
credentials are the gateway's own and never reach the client. Both revisions in use are served
on the same path (``inbound.py`` tells them apart):

- 2026-07-28: one stateless POST per request; ``server/discover``; a request is cancelled by
  closing its connection; GET and DELETE answer 405.
- 2025-11-25 and earlier: ``initialize`` opens a session (``Mcp-Session-Id``, signed, valid on
  every worker: ``sessions.py``), ``ping``, ``notifications/cancelled`` (for a request on this
  worker; a request is also cancelled when its connection closes), DELETE ends the session,
  GET answers 405 (the gateway sends nothing unasked).
"""

from __future__ import annotations

import asyncio
from typing import Any

import falcon
import falcon.asgi

from ...errors import GatewayError, NotFound
from ...mcp.protocol import HANDSHAKE_VERSIONS, LEGACY, MODERN, SESSION_HEADER, RpcError
from ...pipeline.auth import authenticate_any
from ...pipeline.context import Disconnect
from ...server.runtime import Runtime
from ..common import DisconnectGuard, read_body, request_id_of
from .inbound import Inbound, parse
from .methods import Context, Methods
from .respond import answer_with_progress, as_rpc_error, send_error, send_result
from .sessions import Session, Sessions

ALL = "*"  # the session scope of /mcp


class McpResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.methods = Methods(runtime)
        self.sessions = Sessions(runtime)
        # session requests running on this worker, for notifications/cancelled: (session nonce, id) -> task
        self.running: dict[tuple[str, Any], asyncio.Task[Any]] = {}
        self.cancelled: set[tuple[str, Any]] = set()

    async def _caller(self, req: falcon.asgi.Request, server_id: str | None) -> tuple[Context, str]:
        """Who calls, on which endpoint: 401 without a valid key, 404 for a server it may not use."""
        snapshot = self.runtime.snapshot
        caller = await authenticate_any(snapshot, self.runtime.directory, req.get_header("authorization"),
                                        req.get_header("x-api-key"))
        client = caller.client
        allowed = server_id in snapshot.mcp_servers and client.mcp.server_allowed(server_id or "")
        if server_id is not None and not allowed:
            raise NotFound(f"No MCP server '{server_id[:64]}' for this key.")
        return Context(snapshot, client, server_id, "", True), server_id or ALL

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, server_id: str | None = None) -> None:
        request_id = request_id_of(req, resp)
        base, scope = await self._caller(req, server_id)
        raw = await read_body(req, base.snapshot.max_body_bytes)
        try:
            inbound = parse(raw, req.get_header)
        except RpcError as exc:
            send_error(resp, exc, None)
            return
        ctx = Context(base.snapshot, base.client, server_id, request_id, inbound.modern)
        session: Session | None = None
        try:
            if not inbound.modern and inbound.method != "initialize":
                session = await self.sessions.check(req.get_header(SESSION_HEADER), ctx.client.id, scope)
        except RpcError as exc:
            send_error(resp, exc, inbound.id)
            return
        if inbound.notification:
            self._notified(inbound, session)
            resp.status = 202
            return
        if inbound.method == "initialize" and not inbound.modern:
            self._initialize(resp, inbound, ctx, scope)
            return
        await self._dispatch(req, resp, ctx, inbound, session)

    def _initialize(self, resp: falcon.asgi.Response, inbound: Inbound, ctx: Context, scope: str) -> None:
        asked = inbound.params.get("protocolVersion")
        version = asked if isinstance(asked, str) and asked in HANDSHAKE_VERSIONS else LEGACY
        resp.set_header(SESSION_HEADER, self.sessions.open(version, ctx.client.id, scope))
        send_result(resp, inbound.id, self.methods.initialize_result(version))

    def _notified(self, inbound: Inbound, session: Session | None) -> None:
        """``notifications/cancelled`` cancels a request of the session running on this worker."""
        if session is None or inbound.method != "notifications/cancelled":
            return
        key = (session.nonce, inbound.params.get("requestId"))
        task = self.running.get(key)
        if task is not None and not task.done():
            self.cancelled.add(key)
            task.cancel()

    async def _dispatch(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, ctx: Context, inbound: Inbound,
                        session: Session | None) -> None:
        key = (session.nonce, inbound.id) if session is not None else None

        def running(task: asyncio.Task[Any] | None) -> None:
            if key is not None:
                if task is None:
                    self.running.pop(key, None)
                    self.cancelled.discard(key)
                else:
                    self.running[key] = task

        async def work(progress: Any) -> dict[str, Any]:
            return await self.methods.handle(ctx, inbound.method, inbound.params, progress)

        guard = DisconnectGuard(req)
        token = inbound.progress_token() if inbound.method == "tools/call" else None
        if token is not None:
            await answer_with_progress(resp, inbound.id, work, token, guard, running)
            return
        running(asyncio.current_task())
        try:
            result = await work(None)
        except asyncio.CancelledError as exc:
            if not self._absorbed(guard, key):
                raise
            if guard.fired:
                return
            send_error(resp, as_rpc_error(exc), inbound.id)
            return
        except (RpcError, GatewayError) as exc:
            send_error(resp, as_rpc_error(exc), inbound.id)
            return
        finally:
            guard.close()
            running(None)
        send_result(resp, inbound.id, result)

    def _absorbed(self, guard: Disconnect, key: tuple[str, Any] | None) -> bool:
        """True (the cancellation undone) if the client left or cancelled the request itself."""
        guard.close()
        if guard.absorb():
            return True
        task = asyncio.current_task()
        if key is not None and key in self.cancelled and task is not None:
            task.uncancel()
            return True
        return False

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, server_id: str | None = None) -> None:
        """No stream of server-initiated messages is offered: 405 (clients carry on without one)."""
        await self._caller(req, server_id)
        modern = req.get_header("mcp-protocol-version") == MODERN
        resp.status = 405
        resp.set_header("allow", "POST" if modern else "POST, DELETE")

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        server_id: str | None = None) -> None:
        """End a session (2025-11-25); 405 for the stateless revision, which has none."""
        ctx, scope = await self._caller(req, server_id)
        if req.get_header("mcp-protocol-version") == MODERN:
            resp.status = 405
            resp.set_header("allow", "POST")
            return
        try:
            session = await self.sessions.check(req.get_header(SESSION_HEADER), ctx.client.id, scope)
        except RpcError as exc:
            send_error(resp, exc, None)
            return
        await self.sessions.end(session)
        resp.status = 204
