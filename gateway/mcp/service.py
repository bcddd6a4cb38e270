"""MCP tools for one client: what it may list, and calls run under its policy, limits and budget,
every one accounted. This is what the ``/mcp`` endpoint calls, and what a model's tool loop calls:

    tools = await service.list_tools(snap, client, "github")          # the server's own names
    outcome = await service.call_tool(snap, client, "github", "search", {"q": "x"}, request_id=rid)
    outcome.result   # the MCP CallToolResult: {"content": [...], "isError": bool, ...}

A failure of the gateway's or of the server's (down, slow, too large a result, a limit or the
budget reached) is a result with ``isError: true`` that says so, for the model to read; a tool
the client may not use raises ``RpcError`` (``-32602 Unknown tool``) exactly as a missing one
does; a JSON-RPC error the server answered is raised as it came. The guardrails read the
arguments before anything is held or sent, and the result before the client gets it (``guard.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..config.snapshot import Snapshot
from ..core.mcp import McpServerSpec, usable
from ..core.targets import ClientSpec
from ..errors import BudgetExceeded, RateLimited
from ..guardrails.engine import RequestGuard
from ..guardrails.remote import Remote
from ..limits.admission import Admission, ClientLimiter
from ..observability.sinks.hub import SinkHub
from ..store.base import Ledger
from . import accounting as acc
from .guard import blocked_arguments, guard_arguments, guard_result, tool_guard
from .link import Progress, TooLarge, Unreachable
from .protocol import INVALID_PARAMS, RpcError, tool_error
from .registry import DOWN, SLOW, UP, Registry, ServerState

log = logging.getLogger("gateway.mcp")


class ServerUnavailable(Exception):
    """A server's tools could not be listed (down, slow, or not configured in this worker yet)."""

    def __init__(self, server_id: str, reason: str):
        super().__init__(f"MCP server '{server_id}' is unavailable: {reason}")
        self.server_id, self.reason = server_id, reason


@dataclass(frozen=True, slots=True)
class CallOutcome:
    result: dict[str, Any]  # the CallToolResult for the client
    status: str  # accounting's status: ok, tool_error, unavailable, timeout, ...
    streamed: bool = False


def unknown_tool(shown: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Unknown tool: {shown}")


class ToolService:
    def __init__(self, registry: Registry, limiter: Callable[[], ClientLimiter], ledger: Callable[[], Ledger | None],
                 remote: Callable[[Snapshot], Remote] | None = None, sinks: SinkHub | None = None):
        self.registry = registry
        self.limiter = limiter  # read at each call: the runtime builds it again once the stores are open
        self.ledger = ledger
        self.remote = remote  # how the webhook and moderation guards reach their services
        self.sinks = sinks

    # --- listing --------------------------------------------------------------------------
    def servers_for(self, snapshot: Snapshot, client: ClientSpec, server_id: str | None = None) -> list[McpServerSpec]:
        """The servers ``client`` may use (only ``server_id``, when given), in config order."""
        specs = snapshot.mcp_servers
        ids = [server_id] if server_id is not None else list(specs)
        return [specs[i] for i in ids if i in specs and client.mcp.server_allowed(i)]

    async def list_tools(self, snapshot: Snapshot, client: ClientSpec, server_id: str) -> list[dict[str, Any]]:
        """The tools of ``server_id`` that ``client`` may use, as the server describes them (own names).
        Raises ``ServerUnavailable`` (also for a server the client may not use: nothing is told apart)."""
        spec = snapshot.mcp_servers.get(server_id)
        state = self.registry.servers.get(server_id)
        if spec is None or state is None or not client.mcp.server_allowed(server_id):
            raise ServerUnavailable(server_id, "not configured")
        try:
            tools = await self.registry.tools(state)
        except TimeoutError:
            raise ServerUnavailable(server_id, f"it did not list its tools within {state.list_timeout_s:g} s") from None
        except (Unreachable, TooLarge, RpcError) as exc:
            raise ServerUnavailable(server_id, str(exc)) from None
        return [tool for tool in tools if usable(spec, client.mcp, tool["name"])]

    async def list_all(self, snapshot: Snapshot, client: ClientSpec) -> list[tuple[str, list[dict[str, Any]]]]:
        """Every usable server's tools, listed at once; a server that cannot answer is left out (and
        logged by the registry when its health changes)."""
        specs = self.servers_for(snapshot, client)
        found = await asyncio.gather(*(self.list_tools(snapshot, client, s.id) for s in specs), return_exceptions=True)
        listed = []
        for spec, tools in zip(specs, found, strict=True):
            if isinstance(tools, ServerUnavailable):
                log.info("mcp server left out of a tool list", extra={"server": spec.id, "error": tools.reason,
                                                                       "client": client.id})
            elif isinstance(tools, BaseException):
                raise tools
            else:
                listed.append((spec.id, tools))
        return listed

    async def forward(self, snapshot: Snapshot, client: ClientSpec, server_id: str, method: str,
                      params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """A request other than ``tools/call`` (resources, prompts) sent to a server the client may
        use; its result as the server answered. Raises ``ServerUnavailable`` or the server's ``RpcError``."""
        spec = snapshot.mcp_servers.get(server_id)
        state = self.registry.servers.get(server_id)
        if spec is None or state is None or not client.mcp.server_allowed(server_id):
            raise ServerUnavailable(server_id, "not configured")
        try:
            with self.registry.lease(state):
                async with asyncio.timeout(spec.timeout_s):
                    reply = await state.link.request(method, params, name=name, timeout_s=spec.timeout_s,
                                                     limit=spec.max_result_bytes)
        except TimeoutError:
            self.registry.mark(state, SLOW, f"{method} took longer than {spec.timeout_s:g} s")
            raise ServerUnavailable(server_id, f"it did not answer within {spec.timeout_s:g} s") from None
        except TooLarge:
            raise ServerUnavailable(server_id, f"its answer passed {spec.max_result_bytes} bytes") from None
        except Unreachable as exc:
            self.registry.mark(state, DOWN, str(exc))
            raise ServerUnavailable(server_id, str(exc)) from None
        return reply.result

    # --- calling --------------------------------------------------------------------------
    async def call_tool(self, snapshot: Snapshot, client: ClientSpec, server_id: str, tool: str, arguments: Any, *,
                        request_id: str, progress: Progress | None = None, shown_as: str | None = None) -> CallOutcome:
        """Run ``tool`` of ``server_id`` for ``client``: policy, limits and budget first, then the call,
        then the record. ``shown_as``: the tool's name as the client named it (error messages)."""
        rec = acc.CallRecord(request_id, client.id, server_id, tool)
        rec.bytes_in = len(orjson.dumps(arguments)) if arguments is not None else 0
        rec.arguments = arguments if snapshot.observability.capture_content else None
        spec = snapshot.mcp_servers.get(server_id)
        state = self.registry.servers.get(server_id)
        if spec is None or not usable(spec, client.mcp, tool):
            rec.status, rec.detail = acc.DENIED, "not allowed or not configured"
            self._record(snapshot, rec)
            raise unknown_tool(shown_as or tool)
        rec.tool_label = self._label(state, tool)
        guard = tool_guard(snapshot, client, self.remote)
        if guard is not None:
            arguments = await self._guarded_arguments(snapshot, rec, guard, arguments)
        rec.arguments = arguments if snapshot.observability.capture_content else None
        try:
            admission = await self.limiter().admit_tool_call(client, spec.price_per_call_usd)
        except RateLimited as exc:
            return self._refused(snapshot, rec, exc)
        try:
            outcome = await self._run(spec, state, rec, tool, arguments, progress)
            if guard is not None:
                outcome = await self._guarded_result(rec, guard, outcome)
            rec.result = outcome.result if snapshot.observability.capture_content else None
        except BaseException as exc:
            if rec.status == acc.OK:
                rec.status = acc.CANCELLED if isinstance(exc, asyncio.CancelledError) else acc.UNAVAILABLE
            raise
        finally:
            rec.cost_usd = spec.price_per_call_usd if rec.status in acc.CHARGED or rec.ran else 0.0
            if admission.hold is None and rec.cost_usd == 0:
                self._record(snapshot, rec)  # nothing to settle in the store
            else:
                await asyncio.shield(self._settle(snapshot, rec, admission))
        return outcome

    async def _run(self, spec: McpServerSpec, state: ServerState | None, rec: acc.CallRecord, tool: str,
                   arguments: Any, progress: Progress | None) -> CallOutcome:
        if state is None:
            return self._failed(rec, acc.UNAVAILABLE, f"The MCP server '{spec.id}' is not available: the config "
                                                      "was being reloaded; try again.")
        params = {"name": tool, "arguments": arguments if arguments is not None else {}}
        try:
            with self.registry.lease(state):
                async with asyncio.timeout(spec.timeout_s):
                    reply = await state.link.request("tools/call", params, name=tool, progress=progress,
                                                     timeout_s=spec.timeout_s, limit=spec.max_result_bytes)
        except TimeoutError:
            self.registry.mark(state, SLOW, f"tools/call took longer than {spec.timeout_s:g} s")
            return self._failed(rec, acc.TIMEOUT, f"The MCP server '{spec.id}' did not answer within "
                                                  f"{spec.timeout_s:g} s; the call was abandoned.")
        except TooLarge:
            return self._failed(rec, acc.TOO_LARGE, f"The result of '{tool}' from MCP server '{spec.id}' is "
                                                    f"larger than the gateway allows ({spec.max_result_bytes} "
                                                    "bytes); it was refused.")
        except Unreachable as exc:
            self.registry.mark(state, DOWN, str(exc))
            return self._failed(rec, acc.UNAVAILABLE, f"The MCP server '{spec.id}' is unavailable ({exc}); "
                                                      "the tool did not run.")
        except RpcError as exc:
            rec.status, rec.detail, rec.upstream_s = acc.RPC_ERROR, exc.message, time.perf_counter() - rec.started
            raise
        if state.health != UP:
            self.registry.mark(state, UP, None)
        rec.upstream_s, rec.bytes_out, rec.streamed = time.perf_counter() - rec.started, reply.size, reply.streamed
        if reply.result.get("isError") is True:
            rec.status = acc.TOOL_ERROR
        return CallOutcome(reply.result, rec.status, reply.streamed)

    async def _guarded_arguments(self, snapshot: Snapshot, rec: acc.CallRecord, guard: RequestGuard,
                                 arguments: Any) -> Any:
        """The arguments the server gets; a block is recorded and raised (nothing held or sent)."""
        rec.guardrails = guard.events
        arguments, blocked = await guard_arguments(guard, arguments)
        if blocked is not None:
            rec.status, rec.detail = acc.GUARDRAIL_BLOCKED, blocked.message()
            self._record(snapshot, rec)
            raise blocked_arguments(blocked)
        return arguments

    @staticmethod
    async def _guarded_result(rec: acc.CallRecord, guard: RequestGuard, outcome: CallOutcome) -> CallOutcome:
        """The result the client gets; a blocked one is replaced by a tool error saying so."""
        result, blocked = await guard_result(guard, outcome.result)
        if blocked is None:
            return CallOutcome(result, outcome.status, outcome.streamed) if result is not outcome.result else outcome
        rec.ran = True  # the server ran the call: it is charged
        rec.status, rec.detail = acc.GUARDRAIL_BLOCKED, blocked.message()
        return CallOutcome(result, rec.status, outcome.streamed)

    @staticmethod
    def _label(state: ServerState | None, tool: str) -> str:
        """The tool as a metric label: a name the server lists (bounded), else ``other``."""
        tools = state.tools if state is not None else None
        return tool if tools is not None and any(t["name"] == tool for t in tools) else "other"

    def _failed(self, rec: acc.CallRecord, status: str, text: str) -> CallOutcome:
        rec.status, rec.detail = status, text
        return CallOutcome(tool_error(text), status)

    def _refused(self, snapshot: Snapshot, rec: acc.CallRecord, exc: RateLimited) -> CallOutcome:
        wait = exc.headers.get("Retry-After")
        if isinstance(exc, BudgetExceeded):
            rec.status, text = acc.BUDGET_EXCEEDED, f"Budget exceeded: {exc.message}"
        else:
            rec.status, text = acc.RATE_LIMITED, f"Rate limited: {exc.message}"
        if wait is not None:
            text += f" Retry in {math.ceil(float(wait))} s."
        rec.detail = text
        self._record(snapshot, rec)
        return CallOutcome(tool_error(text), rec.status)

    async def _settle(self, snapshot: Snapshot, rec: acc.CallRecord, admission: Admission) -> None:
        try:
            await self.limiter().settle_charge(admission, rec.cost_usd)
        finally:
            self._record(snapshot, rec)

    def _record(self, snapshot: Snapshot, rec: acc.CallRecord) -> None:
        acc.record_call(rec, self.ledger(), snapshot.observability.capture_content, snapshot.server.log_requests,
                        self.sinks)
