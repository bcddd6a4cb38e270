"""Everything one worker holds while serving: the current snapshot and the live state.

The snapshot reference is swapped in one assignment by ``swap``; a request reads
``runtime.snapshot`` once when it arrives and uses that object to the end.

The stores (``storage``, gateway/store/) are opened by the ASGI lifespan (``app.Lifecycle``)
with ``open_stores`` and closed with ``close_stores``; until then ``stores`` is an in-memory
placeholder, so a Runtime built without a lifespan (tests) still serves. What holds a store (the
key pool, the dispatcher, the client limiter, the directory's cache) is built again when they
open, before the first request: callers read those through ``runtime`` at each call.
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
from ..observability.sinks.hub import SinkHub
from ..observability.traces import Tracing
from ..providers.registry import transports
from ..routing.dispatch import Dispatcher
from ..routing.guard_calls import GuardCalls
from ..routing.key_pool import KeyPool
from ..routing.strategies import TargetStats
from ..settings import Settings
from ..store.base import Counters
from ..store.config import Storage
from ..store.directory import ClientDirectory
from ..store.factory import Stores, open_stores
from ..store.guard import GuardedCounters, SplitCounters
from ..store.memory import AsyncMemoryStore
from ..store.memory.counters import MemoryCounters
from ..upstream.client import Upstream
from ..upstream.transports.choice import TransportName


@dataclass
class ReloadStatus:
    result: str = "initial"  # initial | ok | error
    at: float = field(default_factory=time.time)
    error: str | None = None
    restart_needed: list[str] = field(default_factory=list)


class Runtime:
    # what holds the stores, built by ``_serve_from`` (at start, then once the stores are open)
    stores: Stores  # ``stores.runtime``: windows, marks, spend, pins; ``stores.ledger``: the ledger, clients
    counters: Counters  # what the request path decides with (``stores.runtime``'s, guarded)
    key_pool: KeyPool
    dispatcher: Dispatcher
    limiter: ClientLimiter
    directory: ClientDirectory

    def __init__(self, settings: Settings, snapshot: Snapshot, transport: TransportName | None = None):
        self.settings = settings
        self.snapshot = snapshot
        self.reload = ReloadStatus()
        self.started_at = time.time()
        self.stats = TargetStats()
        self.upstream = Upstream(transport, snapshot.server.connect_timeout_s, mounts=transports())
        self.guard: GuardedCounters | None = None  # set when the runtime store is shared
        self.tracing: Tracing | None = None  # started by the ASGI lifespan when traces are exported
        # the response cache: in this process, or on the runtime store's server (use_stores)
        self.cache = ResponseCache(MemoryBackend())
        memory = AsyncMemoryStore()
        self._serve_from(Stores(memory, memory, Storage(type="memory")), memory.counters)
        # where access records go besides the ledger (started by the ASGI lifespan, re-made on reload)
        self.sinks = SinkHub()
        self._use_sinks(snapshot)
        # MCP servers (gateway/mcp/): a link to each, their tools and health; calls through ``tools``
        self.mcp = Registry(self.upstream)
        self.mcp.apply(snapshot.mcp_servers)
        # how the webhook and moderation guards reach their services (``Remote``: one per request)
        self.guard_calls = GuardCalls(self.upstream, lambda: self.dispatcher)
        self.tools = ToolService(self.mcp, lambda: self.limiter, lambda: self.stores.ledger, self.guard_calls.remote,
                                 self.sinks)
        metrics.set_config_version(snapshot.version, None)
        metrics.use_namespace(snapshot.metrics.namespace)  # fixed until a restart

    def _use_sinks(self, snapshot: Snapshot) -> None:
        observability = snapshot.observability
        self.sinks.apply(observability.sinks, observability.capture_content, snapshot.sink_context)

    async def open_stores(self, storage: Storage) -> None:
        """Open the configured stores (raises ``store.base.StoreDown``) and count through them."""
        self.use_stores(await open_stores(storage, data_dir=self.settings.data_dir))

    def use_stores(self, stores: Stores) -> None:
        """Serve from ``stores`` (opened before the first request), as their capability flags say."""
        runtime = stores.runtime
        counters: Counters = runtime.counters
        if runtime.shared and not runtime.scales_workers and self.settings.workers <= 1:
            # one process: nothing to share, so windows and marks stay in memory; spend (which
            # must survive a restart) goes to the store
            counters = SplitCounters(MemoryCounters(), counters)
        if runtime.shared:
            counters = self.guard = GuardedCounters(counters, runtime.ping, runtime.name,
                                                    stores.storage.on_unavailable)
        if runtime.serves_cache:
            self.cache = ResponseCache(runtime.response_cache())
        self._serve_from(stores, counters)
        stores.start_retention()

    def _serve_from(self, stores: Stores, counters: Counters) -> None:
        """Build what holds the stores: the key pool and the dispatcher that uses it, the client
        limiter, the client directory's cache. Nothing is in flight yet when this runs."""
        clock = time.monotonic
        window_s = self.snapshot.routing.limit_window_s
        self.stores = stores
        self.counters = counters
        self.key_pool = KeyPool(counters, clock, window_s)
        self.dispatcher = Dispatcher(self.upstream, self.key_pool, self.stats, clock)
        self.limiter = ClientLimiter(counters, clock, window_s)
        self.directory = ClientDirectory(stores.ledger)

    async def close_stores(self) -> None:
        """Stop the probe, flush the ledger and close the connections."""
        if self.guard is not None:
            await self.guard.close()
        await self.cache.close()
        await self.stores.close()

    def swap(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` current; requests already running keep the one they took."""
        previous = self.snapshot
        self.key_pool.window_s = snapshot.routing.limit_window_s
        self.limiter.window_s = snapshot.routing.limit_window_s
        self.snapshot = snapshot
        self.key_pool.keep_only(snapshot.providers)
        self.mcp.apply(snapshot.mcp_servers)  # calls in flight finish on the links they started on
        self.cache.keep_only(snapshot)
        self.stats.forget({t.name for r in (*snapshot.aliases.values(), *snapshot.bare_models.values())
                           for t in r.targets})
        if (snapshot.observability, snapshot.sink_context) != (previous.observability, previous.sink_context):
            self._use_sinks(snapshot)
        metrics.set_config_version(snapshot.version, previous.version)
