"""Fixtures of the store contract suite: one real server per kind for the session, and a fresh,
empty store of each backend for every test (``store``), plus a second handle on the same state
(``other``: another connection, or the same object for memory)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from gateway.store.base import Store
from gateway.store.memory import AsyncMemoryStore
from gateway.store.postgres import PostgresStore
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore

from .servers import PostgresServer, RedisServer, running_postgres, running_redis

BACKENDS = ["memory", "sqlite", "redis", "postgres"]
SHARED = ["sqlite", "redis", "postgres"]  # backends that several processes share
_prefixes = itertools.count()
OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from running_postgres("gw")


PG_TABLES = "windows, marks, spend, holds, clients, ledger"


def _empty_postgres(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('ledger')").fetchone() != (None,):
            conn.execute(f"TRUNCATE {PG_TABLES}")


@pytest.fixture
async def open_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """``await open_store()`` opens a store of the test's backend on this test's state; each call
    after the first opens another handle on the same state. All are closed after the test."""
    opened: list[Store] = []
    prefix = f"t{next(_prefixes)}:"
    if backend == "postgres":
        _empty_postgres(request.getfixturevalue("postgres_server").dsn("gw"))

    async def open_one(ledger_interval_s: float = 60.0) -> Store:
        store: Store
        if backend == "memory":
            store = opened[0] if opened else AsyncMemoryStore(ledger_interval_s=ledger_interval_s)
        elif backend == "sqlite":
            store = await SqliteStore.open(tmp_path / "gw.db", ledger_interval_s=ledger_interval_s)
        elif backend == "redis":
            addr = request.getfixturevalue("redis_server").addr
            store = await RedisStore.open(addr, prefix=prefix, ledger_interval_s=ledger_interval_s)
        else:
            dsn = request.getfixturevalue("postgres_server").dsn("gw")
            store = await PostgresStore.open(dsn, ledger_interval_s=ledger_interval_s)
        if store not in opened:
            opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, open_store: OpenStore) -> Store:
    return await open_store()


@pytest.fixture
async def other(store: Store, open_store: OpenStore) -> Store:
    """A second handle on ``store``'s state: what another worker or replica would hold."""
    return await open_store()
