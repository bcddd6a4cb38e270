"""Everything one worker holds while serving: the current snapshot and the live state.

The snapshot reference is swapped in one assignment by ``swap``; a request reads
``runtime.snapshot`` once when it arrives and uses that object to the end.

The stores (``storage``, gateway/store/) are opened by the ASGI lifespan (``app.Lifecycle``)
with ``open_stores`` and closed with ``close_stores``; until then ``stores`` is an in-memory
placeholder, so a Runtime built without a lifespan (tests) still serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..cache import ResponseCache
from ..cache.memory import MemoryBackend
from ..config.snapshot import Snapshot
from ..limits.admission import ClientLimiter
from ..mcp.registry import Registry
from ..mcp.service import ToolService
from ..observability import metrics
from ..routing.dispatch import Dispatcher
from ..routing.keys import KeyBoard
from ..routing.strategies import TargetStats
from ..settings import Settings
from ..store.base import Counters
from ..store.config import Storage
from ..store.directory import ClientDirectory
from ..store.factory import Stores, open_stores
from ..store.guard import GuardedCounters, SplitCounters
from ..store.memory import AsyncMemoryStore
from ..upstream.client import Upstream
from ..upstream.transports.choice import TransportName


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
        memory = AsyncMemoryStore()
        # ``stores.runtime``: windows, marks, spend; ``stores.ledger``: the usage ledger and the
        # client directory (the admin API reads and writes clients there)
        self.stores = Stores(memory, memory, Storage(type="memory"))
        self.guard: GuardedCounters | None = None  # set when the runtime store is shared (not memory)
        self.directory = ClientDirectory(memory)
        self.keyboard = KeyBoard(memory, clock, snapshot.routing.limit_window_s)
        self.stats = TargetStats()
        self.upstream = Upstream(transport, snapshot.server.connect_timeout_s)
        self.dispatcher = Dispatcher(self.upstream, self.keyboard, self.stats, clock)
        self.limiter = ClientLimiter(memory, clock, snapshot.routing.limit_window_s)
        # issue 10: the response cache; in this process, or in the runtime store's Redis (use_stores)
        self.cache = ResponseCache(MemoryBackend())
        # MCP servers (gateway/mcp/): a link to each, their tools and health; calls through ``tools``
        self.mcp = Registry(self.upstream)
        self.mcp.apply(snapshot.mcp_servers)
        self.tools = ToolService(self.mcp, self.limiter, lambda: self.stores.ledger)
        metrics.set_config_version(snapshot.version, None)
        metrics.use_namespace(snapshot.metrics.namespace)  # issue 10: fixed until a restart

    async def open_stores(self, storage: Storage) -> None:
        """Open the configured stores (raises ``store.base.StoreUnavailable``) and count through them."""
        self.use_stores(await open_stores(storage, data_dir=self.settings.data_dir))

    def use_stores(self, stores: Stores) -> None:
        self.stores = stores
        runtime = stores.runtime
        counters: Counters = runtime
        if runtime.name == "sqlite" and self.settings.workers <= 1:
            # one process: nothing to share, so windows and marks stay in memory; spend (which
            # must survive a restart) goes to the file
            counters = SplitCounters(AsyncMemoryStore(), runtime)
        if runtime.name != "memory":
            counters = self.guard = GuardedCounters(counters, runtime.ping, runtime.name,
                                                    stores.storage.on_unavailable)
        self.keyboard.store = counters
        self.limiter.store = counters
        self.directory = ClientDirectory(stores.ledger)
        runtime_backend = stores.storage.runtime_backend()
        if runtime_backend.type == "redis" and runtime_backend.addr:
            from ..cache.redis import RedisBackend

            self.cache = ResponseCache(RedisBackend(runtime_backend.addr, runtime_backend.prefix or "gw:"))
        stores.start_retention()

    async def close_stores(self) -> None:
        """Stop the probe, flush the ledger and close the connections."""
        if self.guard is not None:
            await self.guard.close()
        await self.cache.close()
        await self.stores.close()

    def swap(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` current; requests already running keep the one they took."""
        previous = self.snapshot
        self.keyboard.window_s = snapshot.routing.limit_window_s
        self.limiter.window_s = snapshot.routing.limit_window_s
        self.snapshot = snapshot
        self.keyboard.keep_only(snapshot.providers)
        self.mcp.apply(snapshot.mcp_servers)  # calls in flight finish on the links they started on
        self.cache.keep_only(snapshot)
        self.stats.forget({t.name for r in (*snapshot.aliases.values(), *snapshot.bare_models.values())
                           for t in r.targets})
        metrics.set_config_version(snapshot.version, previous.version)
