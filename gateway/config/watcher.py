"""Live reload: watch the config directory and the ``.env`` directory, swap in a new snapshot.

The directories are watched, not the files (an atomic save replaces the file, and a watch on
the old file goes blind). Any event on the config file's or ``.env``'s name triggers a
reload; the new file is parsed and validated in full on a thread, then swapped in with one
assignment. A bad edit is logged once (with its path and line) and counted; the last good
snapshot keeps serving. Every worker process runs its own watcher, so all of them reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import watchfiles

from ..observability import metrics
from ..runtime import Runtime
from .loader import ConfigError, read_environment
from .snapshot import Snapshot, load_snapshot

log = logging.getLogger("gateway.config")
CHECK_EVERY_S = 2.0
RESTART_ONLY_ENV = ("GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_WORKERS")


def restart_needed(old: Snapshot, new: Snapshot, env_at_start: dict[str, str | None],
                   env_now: dict[str, str]) -> list[str]:
    changed = []
    for name in ("listen", "connect_timeout_s"):  # bound when the server and its client start
        if getattr(old.server, name) != getattr(new.server, name):
            changed.append(f"server.{name}")
    for name in RESTART_ONLY_ENV:
        if env_now.get(name) != env_at_start.get(name):
            changed.append(name)
    return changed


class ConfigWatcher:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        settings = runtime.settings
        self.config_path = Path(settings.config).resolve()
        self.env_path = Path(settings.env_file).resolve()
        env = read_environment(self.env_path)
        self.env_at_start = {name: env.get(name) for name in RESTART_ONLY_ENV}
        self._names = {self.config_path, self.env_path}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._check_task: asyncio.Task[None] | None = None
        self._stamp: tuple | None = None  # the files' (mtime, size) when last read; None: not yet
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="config-watcher")
        self._check_task = asyncio.create_task(self._check_now_and_then(), name="config-check")

    async def stop(self) -> None:
        self._stop.set()
        for task in (self._task, self._check_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    def _files_stamp(self) -> tuple:
        stamps = []
        for path in (self.config_path, self.env_path):
            try:
                info = path.stat()
                stamps.append((info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    async def _check_now_and_then(self) -> None:
        """A safety net under the watcher: an edit made before the watch was in place (the worker
        was starting) or one the watch missed is still applied within ``CHECK_EVERY_S``."""
        await asyncio.sleep(0.5)
        while not self._stop.is_set():
            if self._files_stamp() != self._stamp:
                await self.reload()
            await asyncio.sleep(CHECK_EVERY_S)

    def _relevant(self, change: watchfiles.Change, path: str) -> bool:
        return Path(path).resolve() in self._names

    async def _run(self) -> None:
        dirs = sorted({str(self.config_path.parent), str(self.env_path.parent)})
        while not self._stop.is_set():
            try:
                async for _ in watchfiles.awatch(*dirs, watch_filter=self._relevant, stop_event=self._stop,
                                                 debounce=50, step=25, recursive=False):
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config watcher failed; retrying in 1 s")
                await asyncio.sleep(1)

    async def reload(self) -> bool:
        """Build and swap a new snapshot; True if a new one is now in force."""
        async with self._lock:
            runtime = self.runtime
            self._stamp = self._files_stamp()  # taken first: an edit during the load triggers again
            try:
                snapshot = await asyncio.to_thread(load_snapshot, self.config_path, self.env_path)
                env_now = await asyncio.to_thread(read_environment, self.env_path)
            except ConfigError as exc:
                text = exc.render()
                metrics.CONFIG_RELOADS.labels("error").inc()
                runtime.reload.result, runtime.reload.error = "error", text
                runtime.reload.at = time.time()
                if text != self._last_error:
                    log.error("config reload rejected; still serving the last good config",
                              extra={"errors": [i.render(exc.filename) for i in exc.issues],
                                     "config_version": runtime.snapshot.version})
                self._last_error = text
                return False
            self._last_error = None
            current = runtime.snapshot
            runtime.reload.result, runtime.reload.error, runtime.reload.at = "ok", None, time.time()
            if snapshot.version == current.version:
                return False
            needs = restart_needed(current, snapshot, self.env_at_start, env_now)
            runtime.reload.restart_needed = needs
            if needs:
                log.warning("these settings change only with a restart; the rest is applied now",
                            extra={"settings": needs})
            runtime.swap(snapshot)
            metrics.CONFIG_RELOADS.labels("ok").inc()
            for warning in snapshot.warnings:
                log.warning(warning)
            log.info("config reloaded", extra={"config_version": snapshot.version, "previous": current.version})
            return True
