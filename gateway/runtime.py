"""Everything one worker holds while serving: the current snapshot and the live state.

The snapshot reference is swapped in one assignment by ``swap``; a request reads
``runtime.snapshot`` once when it arrives and uses that object to the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .config.snapshot import Snapshot
from .limits import ClientLimiter
from .observability import metrics
from .routing.dispatch import Dispatcher
from .routing.keys import KeyBoard
from .routing.strategies import TargetStats
from .settings import Settings
from .store.memory import MemoryStore
from .transports import TransportName
from .upstream import Upstream


@dataclass
class ReloadStatus:
    result: str = "initial"  # initial | ok | error
    at: float = field(default_factory=time.time)
    error: str | None = None
    restart_needed: list[str] = field(default_factory=list)


class Runtime:
    def __init__(self, settings: Settings, snapshot: Snapshot, transport: TransportName | None = None):
        self.settings = settings
        self.snapshot = snapshot
        self.reload = ReloadStatus()
        self.started_at = time.time()
        clock = time.monotonic
        self.store = MemoryStore()
        self.keyboard = KeyBoard(self.store, clock, snapshot.routing.limit_window_s)
        self.stats = TargetStats()
        self.upstream = Upstream(transport, snapshot.server.connect_timeout_s)
        self.dispatcher = Dispatcher(self.upstream, self.keyboard, self.stats, clock)
        self.limiter = ClientLimiter(self.store, clock, snapshot.routing.limit_window_s)
        metrics.set_config_version(snapshot.version, None)

    def swap(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` current; requests already running keep the one they took."""
        previous = self.snapshot
        self.keyboard.window_s = snapshot.routing.limit_window_s
        self.limiter.window_s = snapshot.routing.limit_window_s
        self.snapshot = snapshot
        self.keyboard.keep_only(snapshot.providers)
        self.stats.forget({t.name for r in (*snapshot.aliases.values(), *snapshot.bare_models.values())
                           for t in r.targets})
        metrics.set_config_version(snapshot.version, previous.version)
