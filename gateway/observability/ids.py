"""Request ids: 16 hex digits, unique within a process, without a system call each.

``os.urandom`` per request cost a ``getrandom`` system call. Instead each process counts from a
random 64-bit start and scrambles the count with a bijection of 64-bit numbers (multiply by an
odd constant, then XOR a random salt), so ids within a process never repeat and do not show
how many requests came in between two of them. Across processes (workers, restarts) they
collide as rarely as random 64-bit ids do.
"""

from __future__ import annotations

import itertools
import os

_MASK = (1 << 64) - 1
_ODD = 0x9E3779B97F4A7C15  # odd, so multiplying by it modulo 2**64 is a bijection


def _random64() -> int:
    return int.from_bytes(os.urandom(8), "big")


_counter = itertools.count(_random64())
_salt = _random64()


def _reseed() -> None:  # a forked worker must not repeat its parent's ids
    global _counter, _salt
    _counter, _salt = itertools.count(_random64()), _random64()


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """16 lowercase hex digits, as ``os.urandom(8).hex()`` gives."""
    return f"{((next(_counter) * _ODD) & _MASK) ^ _salt:016x}"
