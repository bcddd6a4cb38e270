"""``gateway serve`` checks the configured stores before it starts a server: an unreachable Redis
or PostgreSQL (or an unwritable SQLite file) is one clear line and exit status 4, not a worker
crash loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .base import StoreError
from .config import Storage
from .factory import backend_class, open_stores


async def _probe(storage: Storage, data_dir: Path) -> None:
    stores = await open_stores(storage, data_dir=data_dir)
    await stores.close()


# Several workers sharing limits through a store that does not scale with workers (SQLite: one file
# lock) cost more than 30% of the throughput (scripts/bench --stores on 2 cores: 0.69x and 0.45x of
# one worker, CPU per request x2.2-2.5): the gateway refuses that and names the two ways out.
WORKERS_NEED_REDIS = (
    "error: GATEWAY_WORKERS={workers} with storage type '{kind}' for limits, cooldowns and spend is refused: "
    "sharing them through the {kind} store costs more than one worker gains. Run one worker, or give the "
    "workers Redis: storage: {{runtime: {{type: redis, addr: \"host:6379\"}}}} (the ledger and clients may "
    "stay in SQLite)")


def storage_problem(storage: Storage, data_dir: Path, workers: int) -> str | None:
    """None when the stores open (and suit ``workers``); else what to tell the operator."""
    kind = storage.runtime_backend().type
    runtime = backend_class(kind)
    if workers > 1 and runtime.shared and not runtime.scales_workers:
        return WORKERS_NEED_REDIS.format(workers=workers, kind=kind)
    try:
        asyncio.run(_probe(storage, data_dir))
    except StoreError as exc:
        return f"error: cannot open the store named by 'storage' in the config: {exc}"
    return None


def workers_note(storage: Storage, workers: int) -> str:
    """What several workers share, for the start-up line."""
    kind = storage.runtime_backend().type
    if not backend_class(kind).shared:
        return (f"warning: {workers} workers with storage type '{kind}' each keep their own limit windows, "
                "cooldowns, spend and dashboard sign-outs: limits and budgets apply per worker, and a session "
                "signed out in one worker stays valid in the others (use redis to share them)")
    return f"{workers} workers share limits, cooldowns and spend through the {kind} store"
