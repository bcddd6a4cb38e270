"""A sink's queue and worker: records wait in a bounded queue, go out in batches, and a failed
batch is tried again with backoff. The built-in sinks are ``BatchSink``s; so may a plugin's.

A subclass writes ``deliver(batch)`` (raise to say the batch did not arrive: ``DeliveryError``
with ``retry=False`` when trying again cannot help) and, if it holds a connection or a file,
``release()``. Everything here runs on the event loop; ``deliver`` must not block it (run
blocking work with ``asyncio.to_thread``, as the file sink does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any

from ...plugins.loader import one_line
from .. import metrics
from .base import Sink
from .config import SinkConfigBase
from .record import AccessRecord

log = logging.getLogger("gateway.sinks")
HANDOVER_S = 10.0  # how long a reload lets the sink it replaces deliver what it holds


class DeliveryError(Exception):
    """A batch did not arrive. ``retry``: trying again may help (no answer, 408, 429, 5xx)."""

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.retry = retry


class BatchSink:
    """The queue, batching, retries and counts of a sink (see the module docstring)."""

    def __init__(self, config: SinkConfigBase, retries: int = 0, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0) -> None:
        self.name, self.type = config.label, config.type
        self._limit, self._batch, self._interval = config.queue_size, config.batch_size, config.interval_s
        self._retries, self._backoff_s, self._max_backoff_s = retries, backoff_s, max_backoff_s
        self._queue: deque[AccessRecord] = deque()
        self._wake = asyncio.Event()
        self._want = 0  # the queue length that wakes the worker (0: it is not waiting)
        self._in_flight: list[AccessRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = self._closed = False
        self.delivered = self.dropped = self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_delivered_at: float | None = None
        self._failing = False
        self._dropped_counter = metrics.sink_dropped_by(self.name)

    async def deliver(self, batch: list[AccessRecord]) -> None:
        """Send ``batch`` to the destination; raise if it did not arrive."""
        raise NotImplementedError

    async def release(self) -> None:
        """Let go of connections or files once the last batch went out (or was given up)."""

    def put(self, record: AccessRecord) -> None:
        if self._closing or len(self._queue) >= self._limit:
            self._drop(1)
            return
        self._queue.append(record)
        if self._want and len(self._queue) >= self._want:
            self._want = 0
            self._wake.set()

    def start(self, predecessor: Sink | None = None) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(predecessor), name=f"sink-{self.name}")

    async def close(self, timeout_s: float) -> list[AccessRecord]:
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        left = [*self._in_flight, *self._queue]
        self._in_flight, self._queue = [], deque()
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self.release()
        return left

    def status(self) -> dict[str, Any]:
        state = "closed" if self._closed else "failing" if self._failing else "ok"
        return {"name": self.name, "type": self.type, "state": state,
                "queued": len(self._queue) + len(self._in_flight), "delivered": self.delivered,
                "dropped": self.dropped, "errors": self.errors, "last_error": self.last_error,
                "last_error_at": _stamp(self.last_error_at), "last_delivered_at": _stamp(self.last_delivered_at)}

    def take_back(self, records: list[AccessRecord]) -> None:
        """Put ``records`` (a predecessor's) before what waits, as far as the queue's bound lets."""
        room = max(0, self._limit - len(self._queue))
        if len(records) > room:
            self._drop(len(records) - room)
            records = records[len(records) - room:]
        self._queue.extendleft(reversed(records))

    async def _run(self, predecessor: Sink | None) -> None:
        if predecessor is not None:
            try:
                self.take_back(await predecessor.close(HANDOVER_S))
            except Exception as exc:  # a plugin's close that fails loses its own records, not this sink's
                self._failed(exc)
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._wait(1, None)
                continue
            if len(self._queue) < self._batch and not self._closing:
                await self._wait(self._batch, self._interval)
            size = min(self._batch, len(self._queue))
            await self._send([self._queue.popleft() for _ in range(size)])

    async def _wait(self, want: int, timeout_s: float | None) -> None:
        self._wake.clear()
        self._want = want
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            self._want = 0

    async def _send(self, batch: list[AccessRecord]) -> None:
        self._in_flight = batch
        attempt = 0
        while True:
            try:
                await self.deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a sink's failure of any kind is counted and shown, never raised
                self._failed(exc)
                retry = not isinstance(exc, DeliveryError) or exc.retry
                if not retry or attempt >= self._retries:
                    self._in_flight = []
                    self._drop(len(batch))
                    return
                await asyncio.sleep(self._pause(attempt))
                attempt += 1
                continue
            self._in_flight = []
            self._delivered(len(batch))
            return

    def _pause(self, attempt: int) -> float:
        pause: float = min(self._backoff_s * 2.0 ** attempt, self._max_backoff_s)
        return pause * random.uniform(0.8, 1.2)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = str(exc) if isinstance(exc, DeliveryError) else one_line(exc)
        self.last_error_at = time.time()
        metrics.sink_errors_by(self.name).inc()
        if not self._failing:  # said once when it starts failing, and once when it delivers again
            log.warning("a sink failed to deliver; retrying as configured", extra={"sink": self.name,
                                                                                  "error": self.last_error})
        self._failing = True

    def _delivered(self, count: int) -> None:
        self.delivered += count
        if self._failing:
            log.info("a sink delivers again", extra={"sink": self.name})
        self._failing = False
        self.last_delivered_at = time.time()
        metrics.sink_delivered_by(self.name).inc(count)

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._dropped_counter.inc(count)


def _stamp(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
