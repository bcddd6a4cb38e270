"""Request ids: 16 hex digits, unique per process without a system call each.

``os.urandom`` per request cost a ``getrandom`` system call, which measured 0.5-30 µs on the
benchmark VM. Instead each process starts at a random 64-bit point and counts up: two processes
(workers, restarts) collide only if their ranges overlap, about n / 2**63 for n requests each.
"""

from __future__ import annotations

import itertools
import os

_MASK = (1 << 64) - 1


def _start() -> itertools.count[int]:
    return itertools.count(int.from_bytes(os.urandom(8), "big"))


_counter = _start()


def _reseed() -> None:  # a forked worker must not repeat its parent's ids
    global _counter
    _counter = _start()


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """16 lowercase hex digits, as ``os.urandom(8).hex()`` gives."""
    return f"{next(_counter) & _MASK:016x}"
