"""Dashboard sign-outs, kept where every worker, every replica and the next start see them.

A session cookie is signed, not stored (``session.py``), and its signing secret outlives the
process; so a sign-out has to be remembered until the cookie would have expired anyway. Each
one is an expiring mark ``ui-signout:<sid>`` in the backend of the runtime store
(``storage.runtime``) itself, set until the session's expiry plus ``CLOCK_MARGIN_S`` (the
clocks of replicas may differ a little); after that it no longer counts (Redis drops it, SQLite
and PostgreSQL keep a dead row of a few bytes). One mark per session, not a "valid after" stamp
per principal: operators who share the master key or ``UI_USERNAME`` do not sign each other out. Where the mark is:

- one process on SQLite (the default): a row of the SQLite file, so it survives a restart. The
  request path keeps its windows and marks in memory there (``store.guard.SplitCounters``);
  these marks go to the file on purpose.
- several workers or replicas: the runtime store is Redis or PostgreSQL (``serve`` refuses a
  SQLite runtime store for several workers), which all of them read.
- ``type: memory``: the mark lives in this process only, like everything that store holds (the
  start-up line warns that several workers on it do not share their state).

A session is checked with one store read per request that carries a dashboard cookie. What
was signed out through this process is also remembered here, so it holds at once whatever the
store does. While the store cannot be reached, ``storage.on_unavailable`` decides as it does for
the request path (the runtime's guard): ``open`` answers from what this process knows,
``closed`` refuses (503) rather than accept a session it cannot check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ...errors import StoreUnavailable
from ...store.base import Counters, StoreDown
from ...store.guard import GuardedCounters

log = logging.getLogger("gateway.ui")

MARK = "ui-signout:"
CLOCK_MARGIN_S = 300.0


class SignOuts:
    def __init__(self, store: Callable[[], Counters], guard: Callable[[], GuardedCounters | None]) -> None:
        # read on each call: the stores are opened after the routes are built
        self._store = store
        self._guard = guard
        self._here: dict[str, float] = {}  # sid -> expiry, for sessions signed out through this process

    async def record(self, sid: str, expires: float) -> bool:
        """Remember that session ``sid`` (valid until ``expires``, epoch seconds) is signed out.
        False when the store could not take it: it then holds in this process only."""
        now = time.time()
        self._here = {s: e for s, e in self._here.items() if e > now}
        self._here[sid] = expires
        guard = self._guard()
        if guard is None or not guard.degraded:
            try:
                await self._store().set_mark(MARK + sid, expires - now + CLOCK_MARGIN_S)
                return True
            except StoreDown as exc:
                if guard is not None:
                    guard.lost(exc)
        log.error("dashboard sign-out kept in this process only: the store is unreachable, so a copy of the "
                  "cookie stays valid in other workers and replicas, and after a restart, until it expires")
        return False

    async def ended(self, sid: str) -> bool:
        """True when session ``sid`` was signed out (here, or anywhere that shares the store)."""
        if sid in self._here:
            return True
        guard = self._guard()
        if guard is not None and guard.degraded:
            return _unchecked(guard)
        try:
            (left,) = await self._store().marks_remaining([MARK + sid])
        except StoreDown as exc:
            if guard is None:
                raise
            guard.lost(exc)
            return _unchecked(guard)
        return left > 0


def _unchecked(guard: GuardedCounters) -> bool:
    """With the store out of reach: not signed out elsewhere as far as this process knows
    (``open``), or 503 (``closed``)."""
    if guard.mode == "closed":
        raise StoreUnavailable("The dashboard session cannot be checked while the gateway's store is unreachable; "
                      "retry shortly.")
    return False
