"""The configured MCP servers one worker serves: a link to each, its tool list (kept for the
server's ``tools_ttl_s``, dropped when a stdio server says its list changed), and its health.

``apply`` follows the config: a new server gets a link, a removed or changed one is retired:
calls already on it finish, then its link is closed (a stdio server's process stopped). A
background task asks stale, down or slow servers for their tools again every
``CHECK_EVERY_S``, so health is current even with nobody calling. Health is per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.mcp import McpServerSpec
from ..observability import metrics
from ..server.tasks import cancel_and_wait
from ..upstream.client import Upstream
from .http import HttpLink
from .link import Link, LinkError
from .protocol import RpcError
from .stdio import LIST_CAP, StdioLink

log = logging.getLogger("gateway.mcp")
CHECK_EVERY_S = 15.0
LIST_TIMEOUT_S = 10.0  # a tools/list slower than this (or the server's timeout_s) leaves it out
MAX_PAGES = 50

UP, DOWN, SLOW, UNKNOWN = "up", "down", "slow", "unknown"


@dataclass(eq=False)
class ServerState:
    spec: McpServerSpec
    link: Link
    health: str = UNKNOWN
    error: str | None = None
    changed_at: float = field(default_factory=time.time)
    tools: list[dict[str, Any]] | None = None
    tools_at: float = 0.0
    inflight: int = 0
    retired: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def list_timeout_s(self) -> float:
        return min(self.spec.timeout_s, LIST_TIMEOUT_S)

    def view(self) -> dict[str, Any]:
        """What readiness and the admin API show (never a header, an env value or a URL's query)."""
        spec = self.spec
        where = (spec.url or "").split("?", 1)[0] if spec.url else spec.command
        link = self.link
        out: dict[str, Any] = {
            "id": spec.id, "transport": spec.transport, "target": where, "health": self.health,
            "error": self.error, "since": int(self.changed_at), "revision": link.era,
            "tools": len(self.tools) if self.tools is not None else None, "in_flight": self.inflight,
            "timeout_s": spec.timeout_s, "price_per_call_usd": spec.price_per_call_usd,
        }
        if isinstance(link, StdioLink):
            out["process"], out["restarts"] = link.state, link.restarts
        return out


class Registry:
    def __init__(self, upstream: Upstream):
        self.upstream = upstream
        self.servers: dict[str, ServerState] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # --- following the config -------------------------------------------------------------
    def apply(self, specs: Mapping[str, McpServerSpec]) -> None:
        for server_id, state in list(self.servers.items()):
            if specs.get(server_id) != state.spec:
                del self.servers[server_id]
                self._retire(state)
        for server_id, spec in specs.items():
            if server_id not in self.servers:
                state = self.servers[server_id] = ServerState(spec, self._link(spec))
                self._start_link(state)
                metrics.mcp_server_up_by(server_id).set(0)

    def _link(self, spec: McpServerSpec) -> Link:
        if spec.url is not None:
            return HttpLink(spec, self.upstream)
        return StdioLink(spec, on_list_changed=lambda: self._list_changed(spec.id))

    def _list_changed(self, server_id: str) -> None:
        state = self.servers.get(server_id)
        if state is not None:
            state.tools = None

    def _start_link(self, state: ServerState) -> None:
        if isinstance(state.link, StdioLink):
            with contextlib.suppress(RuntimeError):  # no loop yet (building the runtime): start() does it
                asyncio.get_running_loop()
                state.link.start()

    def _retire(self, state: ServerState) -> None:
        state.retired = True
        metrics.mcp_server_up_by.forget(state.spec.id)
        if state.inflight == 0:
            self._close_later(state)

    def _close_later(self, state: ServerState) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        log.info("mcp server retired; closing its link", extra={"server": state.spec.id})
        task = loop.create_task(state.link.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @contextlib.contextmanager
    def lease(self, state: ServerState) -> Iterator[None]:
        """Count a call on ``state``'s link: a retired server's link is closed after its last call."""
        state.inflight += 1
        try:
            yield
        finally:
            state.inflight -= 1
            if state.retired and state.inflight == 0:
                self._close_later(state)

    # --- tools and health -----------------------------------------------------------------
    async def tools(self, state: ServerState) -> list[dict[str, Any]]:
        """The server's tools, from the cache while fresh; raises LinkError, RpcError, TimeoutError."""
        if state.tools is not None and time.monotonic() - state.tools_at < state.spec.tools_ttl_s:
            return state.tools
        async with state.lock:
            if state.tools is not None and time.monotonic() - state.tools_at < state.spec.tools_ttl_s:
                return state.tools
            return await self._fetch_tools(state)

    async def _fetch_tools(self, state: ServerState) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: Any = None
        try:
            with self.lease(state):
                async with asyncio.timeout(state.list_timeout_s):
                    for _ in range(MAX_PAGES):
                        reply = await state.link.request("tools/list", {"cursor": cursor} if cursor else {},
                                                         timeout_s=state.list_timeout_s, limit=LIST_CAP)
                        page = reply.result.get("tools")
                        found += [t for t in page or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
                        cursor = reply.result.get("nextCursor")
                        if not cursor:
                            break
        except TimeoutError:
            self.mark(state, SLOW, f"tools/list took longer than {state.list_timeout_s:g} s")
            raise
        except (LinkError, RpcError) as exc:
            self.mark(state, DOWN, f"tools/list failed: {exc}")
            raise
        state.tools, state.tools_at = found, time.monotonic()
        self.mark(state, UP, None)
        return found

    def mark(self, state: ServerState, health: str, error: str | None) -> None:
        """Set a server's health; a change is logged (the error says why it is left out of lists)."""
        if state.retired:
            return
        changed = health != state.health
        state.error = error
        if changed:
            state.health, state.changed_at = health, time.time()
            metrics.mcp_server_up_by(state.spec.id).set(1 if health == UP else 0)
            if health == UP:
                log.info("mcp server up", extra={"server": state.spec.id})
            else:
                log.warning("mcp server %s: left out of tool lists until it answers", health,
                            extra={"server": state.spec.id, "error": error})

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the stdio servers and the background checks (on the running loop)."""
        for state in self.servers.values():
            self._start_link(state)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._check_now_and_then(), name="mcp-checks")

    async def _check_now_and_then(self) -> None:
        while True:
            try:
                await self._check()
            except Exception:  # a bug here must not end the checks for good
                log.exception("mcp server check failed")
            await asyncio.sleep(CHECK_EVERY_S)

    async def _check(self) -> None:
        now = time.monotonic()
        for state in list(self.servers.values()):
            stale = state.tools is None or now - state.tools_at >= state.spec.tools_ttl_s
            if stale or state.health != UP:
                with contextlib.suppress(LinkError, RpcError, TimeoutError):
                    state.tools = None if state.health != UP else state.tools
                    await self.tools(state)

    def status(self) -> list[dict[str, Any]]:
        return [state.view() for state in self.servers.values()]

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        states = list(self.servers.values())
        self.servers.clear()
        await asyncio.gather(*(state.link.close() for state in states), return_exceptions=True)
        await asyncio.gather(*list(self._closing), return_exceptions=True)
