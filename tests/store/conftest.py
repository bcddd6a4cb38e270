"""Fixtures of the store contract suite: one real server per kind for the session, and a fresh,
empty store of each backend for every test, plus a second handle on the same state (another
connection, or the same object for memory).

The suite runs per role: a test module that sets ``ROLE`` (``"counters"``, ``"pins"``,
``"directory"``, ``"ledger"``) runs against every backend that serves that role (``SERVES``), and
its ``store`` and ``other`` are that role's objects; elsewhere they are the whole stores.
``open_store`` always opens whole stores."""

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
ROLES = ("counters", "pins", "directory", "ledger")
SERVES: dict[str, tuple[str, ...]] = {backend: ROLES for backend in BACKENDS}  # each serves every role
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: every backend that serves the module's ``ROLE`` (every backend without one),
    unless the test names its backends itself."""
    if "backend" not in metafunc.fixturenames:
        return
    if any("backend" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return
    role = getattr(metafunc.module, "ROLE", None)
    metafunc.parametrize("backend", [b for b in BACKENDS if role is None or role in SERVES[b]])


def _role(whole: Store, request: pytest.FixtureRequest) -> object:
    role = getattr(request.module, "ROLE", None)
    return whole if role is None else getattr(whole, role)


@pytest.fixture
async def store(backend: str, open_store: OpenStore, request: pytest.FixtureRequest) -> object:
    return _role(await open_store(), request)


@pytest.fixture
async def other(store: object, open_store: OpenStore, request: pytest.FixtureRequest) -> object:
    """A second handle on ``store``'s state: what another worker or replica would hold."""
    return _role(await open_store(), request)
