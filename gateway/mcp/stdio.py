"""A link to an MCP server the gateway runs as a process: newline-delimited JSON-RPC over its
stdin and stdout (stderr is the server's log, passed to ours at debug level).

The process is started on first use (or by ``start``) and supervised: when it exits it is
started again after a pause that doubles from 0.5 s up to 30 s (back to 0.5 s once it ran 30 s).
Requests in flight when it dies fail at once. Every caller shares the one pipe, so the link
numbers the requests and progress tokens itself. Cancelling a caller writes
``notifications/cancelled`` for its request. ``close`` ends the process: stdin closed, then
SIGTERM, then SIGKILL, a few seconds apart.

The process gets a small environment (``PATH``, ``HOME``, locale and user names) plus the
server's ``env``: never the gateway's own keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..core.mcp import McpServerSpec
from .link import (
    INITIALIZE_PARAMS,
    LinkError,
    Progress,
    Reply,
    TooLarge,
    Unreachable,
    initialized_revision,
    offers_modern,
    relay_progress,
    reply_of,
    sniff_id,
)
from .protocol import MODERN, RpcError, modern_meta

log = logging.getLogger("gateway.mcp")
stderr_log = logging.getLogger("gateway.mcp.stderr")
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LOGNAME", "USER", "SHELL", "TERM", "TMPDIR")
MIN_BACKOFF_S, MAX_BACKOFF_S, STABLE_S = 0.5, 30.0, 30.0
START_TIMEOUT_S = 30.0
LIST_CAP = 4 << 20  # a line may be this long whatever the result bound (a long tool list)


class StdioLink:
    def __init__(self, spec: McpServerSpec, on_list_changed: Callable[[], None] | None = None):
        assert spec.command is not None
        self.spec = spec
        self.era: str | None = None
        self.state = "stopped"  # stopped | starting | up | down | closed
        self.error: str | None = None
        self.restarts = 0
        self.on_list_changed = on_list_changed
        self._cap = max(spec.max_result_bytes, LIST_CAP) + 65536
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], int]]] = {}
        self._progress: dict[int, Progress] = {}
        self._ids = itertools.count(1)
        self._ready: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- the process ------------------------------------------------------------------------
    def start(self) -> None:
        if self._supervisor is None and self.state != "closed":
            self._ready = asyncio.Event()
            self.state = "starting"
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"mcp-{self.spec.id}")

    async def _supervise(self) -> None:
        backoff = MIN_BACKOFF_S
        while self.state != "closed":
            started = time.monotonic()
            reason = await self._run_once()
            self._stopped(reason)
            if self.state == "closed":
                break
            self.state, self.error = "down", reason
            self.restarts += 1
            log.warning("mcp stdio server stopped; starting it again", extra={
                "server": self.spec.id, "reason": reason, "in_s": backoff})
            if time.monotonic() - started > STABLE_S:
                backoff = MIN_BACKOFF_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            if self.state != "closed":
                self.state = "starting"

    async def _run_once(self) -> str:
        """Start the process, shake hands, serve until it exits; why it ended."""
        try:
            proc = self._proc = await asyncio.create_subprocess_exec(
                self.spec.command or "", *self.spec.args, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self._environment(),
                start_new_session=True)
        except OSError as exc:
            return f"cannot start '{self.spec.command}': {exc.strerror or exc}"
        assert proc.stdout is not None and proc.stderr is not None
        self._spawn(self._read(proc.stdout))
        self._spawn(self._drain(proc.stderr))
        try:
            await asyncio.wait_for(self._handshake(), START_TIMEOUT_S)
        except (LinkError, RpcError, TimeoutError, OSError) as exc:
            return f"no MCP handshake ({exc or type(exc).__name__})"
        self.state, self.error = "up", None
        assert self._ready is not None
        self._ready.set()
        log.info("mcp stdio server started", extra={"server": self.spec.id, "pid": proc.pid, "revision": self.era})
        code = await proc.wait()
        return f"the process exited with status {code}"

    def _stopped(self, reason: str) -> None:
        if self._ready is not None:
            self._ready.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Unreachable(reason))
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        env.update(self.spec.env)
        return env

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handshake(self) -> None:
        try:
            if offers_modern(await self._call("server/discover", {"_meta": modern_meta()}, None, LIST_CAP)):
                self.era = MODERN
                return
        except RpcError:
            pass
        self.era = initialized_revision(await self._call("initialize", INITIALIZE_PARAMS, None, LIST_CAP))
        self._write({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}})

    # --- requests ---------------------------------------------------------------------------
    async def request(self, method: str, params: dict[str, Any], *, name: str | None = None,
                      progress: Progress | None = None, timeout_s: float, limit: int) -> Reply:
        self.start()
        if self._ready is None or self.state == "closed":
            raise Unreachable("the server was removed from the config")
        if not self._ready.is_set():
            if self.state == "down":
                raise Unreachable(f"its process is down ({self.error}); it is being started again")
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                raise Unreachable(f"its process did not start within {timeout_s:g} s ({self.error})") from None
        if self.era == MODERN:
            params = {**params, "_meta": {**(params.get("_meta") or {}), **modern_meta()}}
        return await self._call(method, params, progress, limit)

    async def _call(self, method: str, params: dict[str, Any], progress: Progress | None, limit: int) -> Reply:
        request_id = next(self._ids)
        if progress is not None:
            params = {**params, "_meta": {**(params.get("_meta") or {}), "progressToken": request_id}}
            self._progress[request_id] = progress
        future = self._pending[request_id] = asyncio.get_running_loop().create_future()
        try:
            self._write({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            message, size = await future
        except asyncio.CancelledError:
            with contextlib.suppress(Unreachable):  # a process that is gone has nothing to cancel
                self._write({"jsonrpc": "2.0", "method": "notifications/cancelled",
                             "params": {"requestId": request_id}})
            raise
        finally:
            self._pending.pop(request_id, None)
            self._progress.pop(request_id, None)
        if size > limit:
            raise TooLarge(f"its answer passed {limit} bytes")
        return reply_of(message, request_id, size)

    def _write(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            raise Unreachable("its process is not running")
        proc.stdin.write(orjson.dumps(message) + b"\n")

    # --- what the process writes ------------------------------------------------------------
    async def _read(self, stdout: asyncio.StreamReader) -> None:
        """Lines from stdout; a line longer than the cap is dropped and its request (when its id can
        be read at its start) fails as too large."""
        pending = bytearray()
        skipping = False
        while chunk := await stdout.read(65536):
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                piece, start = chunk[start:end], end + 1
                if skipping:
                    skipping = False
                elif pending:
                    pending += piece
                    self._line(bytes(pending))
                    pending.clear()
                else:
                    self._line(piece)
            if not skipping:
                pending += chunk[start:]
                if len(pending) > self._cap:
                    self._too_long(bytes(pending[:512]))
                    pending.clear()
                    skipping = True

    def _too_long(self, prefix: bytes) -> None:
        request_id = sniff_id(prefix)
        future = self._pending.get(request_id) if request_id is not None else None
        log.warning("mcp stdio server wrote a message over the size bound; dropped",
                    extra={"server": self.spec.id, "bytes": self._cap})
        if future is not None and not future.done():
            future.set_exception(TooLarge(f"its answer passed {self._cap} bytes"))

    def _line(self, line: bytes) -> None:
        if len(line) > self._cap:
            self._too_long(line[:512])
            return
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return  # not a message (stdout must carry nothing else; tolerate it)
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method is None:
            future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result((message, len(line)))
        elif "id" in message:
            self._answer_server_request(message)
        elif method == "notifications/progress":
            params = message.get("params")
            token = params.get("progressToken") if isinstance(params, dict) else None
            progress = self._progress.get(token) if isinstance(token, int) else None
            if progress is not None:
                self._spawn(relay_progress(progress, params))
        elif method == "notifications/tools/list_changed" and self.on_list_changed is not None:
            self.on_list_changed()

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        """A request from the server: ``ping`` is answered; the gateway offers no other capability."""
        with contextlib.suppress(Unreachable):
            if message.get("method") == "ping":
                self._write({"jsonrpc": "2.0", "id": message["id"], "result": {}})
            else:
                self._write(RpcError(-32601, "The gateway offers no client capabilities").body(message["id"]))

    async def _drain(self, stderr: asyncio.StreamReader) -> None:
        with contextlib.suppress(ValueError, OSError):
            while line := await stderr.readline():
                stderr_log.debug("mcp server stderr", extra={"server": self.spec.id,
                                                             "line": line.decode("utf-8", "replace")[:500]})

    async def close(self) -> None:
        """Stop supervising and end the process (stdin closed, then SIGTERM, then SIGKILL)."""
        self.state = "closed"
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            for signal_it in (None, proc.terminate, proc.kill):
                if signal_it is not None:
                    with contextlib.suppress(ProcessLookupError):
                        signal_it()
                try:
                    await asyncio.wait_for(proc.wait(), 2.0)
                    break
                except TimeoutError:
                    continue
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        self._stopped("the server was removed")
        for task in list(self._tasks):
            task.cancel()
