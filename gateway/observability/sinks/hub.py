"""What one worker holds: the sinks of the config in force, fed by ``put`` on the request path.

``apply`` makes the sinks of a config (at start, and on every reload that changes
``observability``): a sink whose config is unchanged goes on as it is; a changed one is made anew
and starts once the one it replaces is closed, taking over what that one could not deliver
within ``HANDOVER_S`` (records first, in order); a removed one is closed in the background, and
what it could not deliver is counted as dropped. A sink that cannot be made stands in the list
as ``BrokenSink``, failing in readiness, its records dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from ...plugins.loader import one_line
from .. import metrics
from .base import Sink, SinkContext, SinkUnusable
from .batch import HANDOVER_S
from .config import SinkConfigBase
from .record import AccessRecord
from .registry import sink_type

log = logging.getLogger("gateway.sinks")
CLOSE_S = 5.0  # what stopping the gateway gives the sinks to deliver what they hold


class BrokenSink:
    """A sink its config could not make: every record it is given is dropped and counted."""

    def __init__(self, config: SinkConfigBase, error: str):
        self.name, self.type, self.error = config.label, config.type, error
        self.dropped = 0
        self._retiring: asyncio.Task[None] | None = None  # the sink it replaced, closing

    def put(self, record: AccessRecord) -> None:
        self.dropped += 1
        metrics.sink_dropped_by(self.name).inc()

    def start(self, predecessor: Sink | None = None) -> None:
        if predecessor is not None and self._retiring is None:
            self._retiring = asyncio.get_running_loop().create_task(_retire(predecessor))

    async def close(self, timeout_s: float) -> list[AccessRecord]:
        return []

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "state": "failing", "queued": 0, "delivered": 0,
                "dropped": self.dropped, "errors": 0, "last_error": self.error, "last_error_at": None,
                "last_delivered_at": None}


async def _retire(sink: Sink, timeout_s: float = HANDOVER_S) -> None:
    """Close a sink nothing replaces; what it could not deliver is dropped and counted."""
    try:
        left = await sink.close(timeout_s)
    except Exception as exc:  # a plugin's close that fails: said once, the gateway goes on
        log.warning("a sink failed to close", extra={"sink": sink.name, "error": one_line(exc)})
        return
    if left:
        metrics.sink_dropped_by(sink.name).inc(len(left))
        log.warning("a sink closed with records it could not deliver; they are dropped",
                    extra={"sink": sink.name, "records": len(left)})


def make_sink(config: SinkConfigBase, context: SinkContext) -> Sink:
    try:
        return sink_type(config.type).build(config, context)
    except SinkUnusable as exc:
        error = str(exc)
    except Exception as exc:  # a plugin's build that fails: one line, and the sink shows as failing
        error = f"could not be made: {one_line(exc)}"
    log.error("a sink could not be made; its records are dropped", extra={"sink": config.label, "error": error})
    return BrokenSink(config, error)


class SinkHub:
    def __init__(self) -> None:
        self.sinks: tuple[Sink, ...] = ()
        self.capture_content = False
        self._configs: dict[str, SinkConfigBase] = {}
        self._pending: list[tuple[Sink, Sink | None]] = []  # made, not started: the loop is not running yet
        self._running = False
        self._background: set[asyncio.Task[None]] = set()

    def put(self, record: AccessRecord) -> None:
        """Hand a record to every sink (never waits; see ``Sink.put``)."""
        for sink in self.sinks:
            sink.put(record)

    def apply(self, configs: Sequence[SinkConfigBase], capture_content: bool, context: SinkContext) -> None:
        """Serve ``configs`` from now on (see the module docstring)."""
        old = {sink.name: sink for sink in self.sinks}
        kept: dict[str, SinkConfigBase] = {}
        sinks: list[Sink] = []
        for config in configs:
            label = config.label
            if label in old and self._configs.get(label) == config:
                sinks.append(old.pop(label))
            else:
                sink = make_sink(config, context)
                sinks.append(sink)
                self._pending.append((sink, old.pop(label, None)))
            kept[label] = config
        self.sinks, self._configs, self.capture_content = tuple(sinks), kept, capture_content
        for gone in old.values():
            self._pending = [(s, p) for s, p in self._pending if s is not gone]
            if self._running:
                self._spawn(_retire(gone))
        if self._running:
            self.start()

    def start(self) -> None:
        """Start the sinks made so far (on the running loop; the ASGI lifespan calls it)."""
        self._running = True
        pending, self._pending = self._pending, []
        for sink, predecessor in pending:
            sink.start(predecessor)

    async def close(self, timeout_s: float = CLOSE_S) -> None:
        """Deliver what the sinks hold within ``timeout_s``; the rest is dropped and counted."""
        self._running = False
        sinks, self.sinks = self.sinks, ()
        await asyncio.gather(*(_retire(sink, timeout_s) for sink in sinks))
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout_s)

    def status(self) -> list[dict[str, Any]]:
        """Each sink's state for readiness and the dashboard (``Sink.status``)."""
        out = []
        for sink in self.sinks:
            try:
                out.append(sink.status())
            except Exception as exc:  # a plugin's status that fails is itself a failing state
                out.append({"name": sink.name, "type": sink.type, "state": "failing", "last_error": one_line(exc)})
        return out

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
