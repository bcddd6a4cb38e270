"""Live reload: watch the config and ``.env`` directories, swap in a new snapshot.

Directories are watched, not files (an atomic save replaces the file, and a watch on the old
file goes blind): the directory that holds each path as configured and, when that path is a
symlink, the directory of what it resolves to now. So a Kubernetes ConfigMap mount
(``config.yaml -> ..data/config.yaml``, ``..data`` swapped atomically) and a re-pointed plain
symlink both reload; the files are always read through the configured path, never through a
target resolved once at start. When a reload moves a link's target to another directory, the
watch is restarted on the new set.

An event starts a reload, which first waits until the files have stopped changing
(``settle.py``), then parses and validates them on a thread (the event loop keeps serving),
checks what only a reload refuses (``guard.py``: an empty or cut-short file), and swaps the
new snapshot in with one assignment. A bad edit is logged once (with its path and line) and
counted; the last good snapshot keeps serving. Every worker process runs its own watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import watchfiles

from ..observability import metrics
from ..observability.otlp import OtlpSettings
from ..server.runtime import Runtime
from ..store.directory import warn_shadowed
from .guard import reload_refusals
from .loader import ConfigError, ConfigIssue, LoadedConfig, environment_from, parse_config, read_environment
from .settle import FileState, Stamp, read_settled, stamp_of
from .snapshot import Snapshot, build_snapshot

log = logging.getLogger("gateway.config")
CHECK_EVERY_S = 2.0
RESTART_ONLY_ENV = ("GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_WORKERS")
KUBERNETES_PREFIX = ".."  # a ConfigMap mount swaps "..data" and "..<timestamp>" entries beside the file


def restart_needed(old: Snapshot, new: Snapshot, env_at_start: dict[str, str | None],
                   env_now: dict[str, str], otlp_in_effect: OtlpSettings | None = None) -> list[str]:
    """The settings a reload changed that only a restart applies (``otlp_in_effect``: where this
    worker exports traces, None when it does not)."""
    changed = []
    # bound when the server, its routes and its upstream client start
    for name in ("listen", "connect_timeout_s", "base_paths"):
        if getattr(old.server, name) != getattr(new.server, name):
            changed.append(f"server.{name}")
    for name in RESTART_ONLY_ENV:
        if env_now.get(name) != env_at_start.get(name):
            changed.append(name)
    if new.metrics.namespace != metrics.namespace():  # the metric names are fixed at start
        changed.append("metrics.namespace")
    if new.otlp != otlp_in_effect:  # the exporter is built when the worker starts
        changed.append("observability.otlp")
    return changed


def build_from(states: tuple[FileState, FileState], filename: str) -> tuple[LoadedConfig, Snapshot]:
    """Parse and validate the settled contents of the config file and ``.env`` (runs on a thread)."""
    config, env = states
    if config.data is None:
        raise ConfigError(filename, [ConfigIssue("", f"cannot read the file: {config.error}")])
    environ = environment_from(env.data.decode("utf-8", "replace") if env.data is not None else None)
    loaded = parse_config(config.data, filename, environ)
    return loaded, build_snapshot(loaded, filename)


class ConfigWatcher:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        settings = runtime.settings
        # absolute, symlinks kept: resolving once at start would pin a target that a swap deletes
        self.config_path = Path(os.path.abspath(settings.config))
        self.env_path = Path(os.path.abspath(settings.env_file))
        env = read_environment(self.env_path)
        self.env_at_start = {name: env.get(name) for name in RESTART_ONLY_ENV}
        self._stop = asyncio.Event()
        self._rewatch = asyncio.Event()  # set: the running watch ends and restarts on the current dirs
        self._task: asyncio.Task[None] | None = None
        self._check_task: asyncio.Task[None] | None = None
        self._stamp: tuple[Stamp | None, ...] | None = None  # the files' stamps when last read; None: not yet
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="config-watcher")
        self._check_task = asyncio.create_task(self._check_now_and_then(), name="config-check")

    async def stop(self) -> None:
        self._stop.set()
        self._rewatch.set()
        for task in (self._task, self._check_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _paths(self) -> tuple[Path, Path]:
        return self.config_path, self.env_path

    def _files_stamp(self) -> tuple[Stamp | None, ...]:
        return tuple(stamp_of(path) for path in self._paths())

    def watched_dirs(self) -> list[str]:
        """The directories of the configured paths and of what they resolve to now."""
        dirs = {path.parent for path in self._paths()} | {path.resolve().parent for path in self._paths()}
        return sorted(str(d) for d in dirs if d.is_dir())

    def _names(self) -> set[Path]:
        return set(self._paths()) | {path.resolve() for path in self._paths()}

    def _relevant(self, change: watchfiles.Change, path: str) -> bool:
        changed = Path(path)
        if changed in self._names():
            return True
        return changed.parent == self.config_path.parent and changed.name.startswith(KUBERNETES_PREFIX)

    async def _check_now_and_then(self) -> None:
        """A safety net under the watcher: an edit made before the watch was in place (the worker
        was starting) or one the watch missed is still applied within ``CHECK_EVERY_S``."""
        await asyncio.sleep(0.5)
        while not self._stop.is_set():
            if self._files_stamp() != self._stamp:
                await self.reload()
            await asyncio.sleep(CHECK_EVERY_S)

    async def _run(self) -> None:
        while not self._stop.is_set():
            dirs = self.watched_dirs()
            self._rewatch = asyncio.Event()
            try:
                async for _ in watchfiles.awatch(*dirs, watch_filter=self._relevant, stop_event=self._rewatch,
                                                 debounce=50, step=25, recursive=False):
                    await self.reload()
                    if self.watched_dirs() != dirs:
                        log.info("config watch moved", extra={"dirs": self.watched_dirs()})
                        break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config watcher failed; retrying in 1 s")
                await asyncio.sleep(1)

    async def reload(self) -> bool:
        """Build and swap a new snapshot; True if a new one is now in force."""
        async with self._lock:
            runtime = self.runtime
            current = runtime.snapshot
            states = await read_settled(self._paths())
            # the stamps of what is parsed: an edit after this read triggers again
            self._stamp = tuple(state.stamp for state in states)
            filename = str(self.config_path)
            try:
                loaded, snapshot = await asyncio.to_thread(build_from, (states[0], states[1]), filename)
                refusals = reload_refusals(loaded, current, snapshot) if snapshot.version != current.version else []
                if refusals:
                    raise ConfigError(filename, refusals)
            except ConfigError as exc:
                self._record_error(exc)
                return False
            self._last_error = None
            runtime.reload.result, runtime.reload.error, runtime.reload.at = "ok", None, time.time()
            if snapshot.version == current.version:
                return False
            self._apply(current, snapshot, loaded.environ)
            if snapshot.client_ids - current.client_ids:  # a new config client may shadow a directory one
                await warn_shadowed(runtime.stores.ledger, snapshot)
            return True

    def _record_error(self, exc: ConfigError) -> None:
        runtime = self.runtime
        text = exc.render()
        metrics.CONFIG_RELOADS.labels("error").inc()
        runtime.reload.result, runtime.reload.error = "error", text
        runtime.reload.at = time.time()
        if text != self._last_error:
            log.error("config reload rejected; still serving the last good config",
                      extra={"errors": [i.render(exc.filename) for i in exc.issues],
                             "config_version": runtime.snapshot.version})
        self._last_error = text

    def _apply(self, current: Snapshot, snapshot: Snapshot, env_now: dict[str, str]) -> None:
        runtime = self.runtime
        tracing = runtime.tracing
        needs = restart_needed(current, snapshot, self.env_at_start, env_now,
                               tracing.settings if tracing is not None else None)
        runtime.reload.restart_needed = needs
        if needs:
            log.warning("these settings change only with a restart; the rest is applied now",
                        extra={"settings": needs})
        runtime.swap(snapshot)
        metrics.CONFIG_RELOADS.labels("ok").inc()
        for warning in snapshot.warnings:
            log.warning(warning)
        log.info("config reloaded", extra={"config_version": snapshot.version, "previous": current.version})
