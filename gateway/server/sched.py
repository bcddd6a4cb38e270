"""An opt-in Linux scheduling hint for a worker with a core to itself: the event loop's thread is
not preempted by the worker's own helper threads.

A worker is one Python thread running the event loop (every request's Python work) beside
Granian's Rust threads (socket I/O, handing requests over) and a few pool threads. With
default scheduling, every time a helper thread wakes up (a request arrived, a response is
ready to write) it preempts the loop's thread on a busy core: on one core that was about six
context switches a request. Helper threads under ``SCHED_BATCH`` still get their fair share of
the CPU and run at once on an idle core, but a wake-up no longer preempts: the helper runs when
the loop waits for I/O, which at load hands over many requests per switch. Measured with
``scripts/bench`` (one worker pinned to one core, nothing else on it, c=16): 6.4 → 0.6 context
switches a request, about 50 µs less CPU a request, 3,800 → 4,700 req/s (docs/performance.md).

Why it is off by default (``GATEWAY_BATCH_HELPER_THREADS=true`` turns it on): a batched thread
never preempts anything, another process's busy thread included, so when the worker shares its
core every hand-off waits for the other process's time slice. With a CPU-bound process of
another session on the gateway's core, one connection at 500 req/s went from +0.44-0.47 ms added p50
to over a second (the worker fell behind). Turn it on only where the worker's core is its own
(pinned workers, a container with dedicated CPUs); by the same reasoning (not measured) it
should stay off where several workers share cores.

Threads appear over the life of a worker (pools grow on demand), so the hint is applied again
every ``SWEEP_S`` seconds. Elsewhere than Linux it does nothing. No privileges are needed:
lowering one's own threads to ``SCHED_BATCH`` is always allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading

from .tasks import cancel_and_wait

SWEEP_S = 5.0
FIRST_SWEEPS_S = (0.0, 0.2, 1.0)
TASKS = "/proc/self/task"
log = logging.getLogger("gateway")


def batch_other_threads(loop_thread: int) -> int:
    """Put every thread of this process but ``loop_thread`` (a native id) under ``SCHED_BATCH``;
    how many were changed now. Threads that ended meanwhile are skipped."""
    if not hasattr(os, "SCHED_BATCH"):
        return 0
    changed = 0
    try:
        tids = [int(name) for name in os.listdir(TASKS)]
    except OSError:
        return 0
    for tid in tids:
        if tid == loop_thread:
            continue
        with contextlib.suppress(OSError):  # gone already, or a policy we leave alone
            if os.sched_getscheduler(tid) == os.SCHED_OTHER:
                os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
                changed += 1
    return changed


class LoopFirst:
    """Keeps the helper threads batched while the worker serves (``start`` from the loop's thread)."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not hasattr(os, "SCHED_BATCH") or not os.path.isdir(TASKS):
            return
        self._task = asyncio.get_running_loop().create_task(self._sweep(threading.get_native_id()),
                                                            name="batch-helper-threads")

    async def _sweep(self, loop_thread: int) -> None:
        changed = 0
        for delay in FIRST_SWEEPS_S:  # the server starts its threads around the lifespan start-up
            await asyncio.sleep(delay)
            changed += batch_other_threads(loop_thread)
        log.debug("helper threads under SCHED_BATCH", extra={"threads": changed})
        while True:
            await asyncio.sleep(SWEEP_S)
            batch_other_threads(loop_thread)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
