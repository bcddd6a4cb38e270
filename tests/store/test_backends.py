"""What only the shared backends do: several processes on one store, restarts, a server lost and
back, unreachable addresses, concurrent migrations, and the ``storage`` config and factory."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import psycopg
import pytest
import redis.asyncio as redis
import yaml

from gateway.config.schema import GatewayConfig
from gateway.store.base import Store, StoreDown
from gateway.store.config import Storage
from gateway.store.factory import open_backend, open_stores
from gateway.store.memory import AsyncMemoryStore
from gateway.store.postgres import PostgresStore
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore
from gateway.store.values import Ask, ClientRecord, LedgerRow

from .conftest import SHARED, OpenStore
from .servers import (
    PostgresServer,
    RedisServer,
    free_port,
    running_postgres,
    running_redis,
)

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import asyncio, sys, time
    from gateway.store.factory import open_backend
    from gateway.store.config import Backend

    async def main() -> None:
        kind, where, prefix, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
        spec = {"sqlite": Backend(type="sqlite", path=where), "redis": Backend(type="redis", addr=where, prefix=prefix),
                "postgres": Backend(type="postgres", dsn=where)}[kind]
        store = await open_backend(spec)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(*(store.check_and_reserve("proc", 50, 1, 60.0) for _ in range(100)))
        await store.close()
        print(sum(r.ok for r in results))

    asyncio.run(main())
""")


def row(n: int) -> LedgerRow:
    return LedgerRow(time=1_700_000_000.0 + n, request_id=f"r{n}", client_id="c", provider="p", model="m",
                     key_label="p#1", status=200, tokens_in=1, tokens_out=1, cost_usd=0.5)


def _where(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return str(tmp_path / "gw.db")
    if backend == "redis":
        return str(request.getfixturevalue("redis_server").addr)
    return str(request.getfixturevalue("postgres_server").dsn("gw"))


@pytest.mark.parametrize("backend", SHARED)
async def test_two_processes_share_a_limit_exactly(backend: str, open_store: OpenStore,
                                                   request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Two worker processes fire 100 reservations each at one window of 50: 50 pass in all."""
    await open_store()  # a fresh, migrated, empty store for the two processes
    where, prefix = _where(backend, request, tmp_path), f"proc{time.monotonic_ns()}:"
    start_at = f"{time.time() + 1.2:.3f}"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, backend, where, prefix, start_at], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    counts = [int(out) for out, _ in outputs]
    assert sum(counts) == 50, counts


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_state_survives_a_restart(backend: str, open_store: OpenStore) -> None:
    """Spend 3 of a client's budget, stop, start again: the spend, the client and the ledger are there."""
    first = await open_store()
    await first.create_client(ClientRecord(id="app", key_digest=b"\x01" * 32))
    await first.add_spend("app", 3.0)
    first.record(row(1))
    await first.close()
    again = await open_store()
    assert (await again.spend("app")).day == pytest.approx(3.0)
    assert (await again.get_client("app")) is not None
    assert (await again.usage_totals("c", 0, 2e9)).total_requests == 1


# --- unreachable and lost servers --------------------------------------------------------------


async def test_unreachable_redis_at_start_is_a_clear_error_without_the_password() -> None:
    port = free_port()
    with pytest.raises(StoreDown) as err:
        await RedisStore.open(f"redis://:s3cret-pass@127.0.0.1:{port}/2")
    message = str(err.value)
    assert f"redis://127.0.0.1:{port}/2" in message and "unreachable" in message
    assert "s3cret" not in message


async def test_unreachable_postgres_at_start_is_a_clear_error_without_the_password() -> None:
    port = free_port()
    with pytest.raises(StoreDown) as err:
        await PostgresStore.open(f"postgresql://gw:s3cret-pass@127.0.0.1:{port}/gw", connect_timeout_s=1.0)
    message = str(err.value)
    assert f"postgres://gw@127.0.0.1:{port}/gw" in message
    assert "s3cret" not in message


async def test_an_unwritable_sqlite_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreDown, match="sqlite store .*file/gw.db: cannot open"):
        await SqliteStore.open(tmp_path / "file" / "gw.db")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    yield from running_postgres()


async def _until_up(store: Store, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await store.ping()
            return
        except StoreDown:
            assert time.monotonic() < deadline, "the store did not recover after its server came back"
            await anyio.sleep(0.1)


async def _lose_and_recover(store: Store, stop_server: Callable[[], object],
                            start_server: Callable[[], object]) -> None:
    """While the server is down every call raises StoreDown and ledger rows wait in the
    buffer; once it is back the same store object works again and writes them."""
    store.record(row(1))
    assert await store.flush() == 1
    await anyio.to_thread.run_sync(stop_server)
    with pytest.raises(StoreDown):
        await store.ping()
    with pytest.raises(StoreDown):
        await store.check_and_reserve("w", 10, 1, 60.0)
    store.record(row(2))
    store.record(row(3))
    with pytest.raises(StoreDown):
        await store.flush()
    await anyio.to_thread.run_sync(start_server)
    await _until_up(store)
    assert await store.flush() == 2
    assert (await store.check_and_reserve("w", 10, 1, 60.0)).ok


async def test_redis_lost_while_serving_and_back(own_redis: RedisServer) -> None:
    store = await RedisStore.open(own_redis.addr, ledger_interval_s=60.0)
    try:
        await _lose_and_recover(store, own_redis.stop, own_redis.start)
        # redis-server in the tests keeps nothing on disk: only the rows written after its return remain
        assert (await store.usage_totals("c", 0, 2e9)).total_requests == 2
    finally:
        await store.close()


async def test_redis_request_path_survives_a_flushed_script_cache_and_long_replies(redis_server: RedisServer) -> None:
    """The request path's connection runs scripts by SHA: after SCRIPT FLUSH (a restarted or failed-over
    server) it sends them again; a reply larger than one read arrives whole; replies stay in order."""
    store = await RedisStore.open(redis_server.addr, prefix=f"flush{time.monotonic_ns()}:")
    try:
        assert (await store.reserve_all([Ask("w", 3, 1, 30.0)])).ok
        admin = redis.Redis.from_url(f"redis://{redis_server.addr}")
        await admin.script_flush()
        await admin.aclose()
        assert (await store.reserve_all([Ask("w", 3, 1, 30.0)])).ok
        names = [f"k{i}" for i in range(5000)]
        left, version, counted = await asyncio.gather(store.marks_remaining(names), store.directory_version(),
                                                      store.check_and_reserve("w", 3, 1, 30.0))
        assert left == [0.0] * 5000 and version == 0 and counted.ok and counted.used == 3
    finally:
        await store.close()


async def test_a_stalled_redis_fails_the_request_path_within_its_timeout_and_recovers(own_redis: RedisServer) -> None:
    """A server that stops answering (paused, not closed): waiting calls fail after ``timeout_s`` with
    StoreDown, not for ever; once it answers again the next call reconnects."""
    store = RedisStore(own_redis.addr, timeout_s=0.5)
    await store.ping()
    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreDown) as err:
            await asyncio.gather(store.check_and_reserve("w", 10, 1, 60.0), store.ping())
        assert "TimeoutError" in str(err.value) and time.monotonic() - started < 3.0
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    try:
        await _until_up(store)
        assert (await store.check_and_reserve("w", 10, 1, 60.0)).ok
    finally:
        await store.close()


async def test_postgres_lost_while_serving_and_back(own_postgres: PostgresServer) -> None:
    store = await PostgresStore.open(own_postgres.dsn(), ledger_interval_s=60.0, timeout_s=1.0)
    try:
        await _lose_and_recover(store, own_postgres.stop, own_postgres.start)
        assert (await store.usage_totals("c", 0, 2e9)).total_requests == 3  # nothing acknowledged was lost
    finally:
        await store.close()


# --- migrations --------------------------------------------------------------------------------


async def test_two_replicas_migrate_a_fresh_postgres_at_once(postgres_server: PostgresServer) -> None:
    for attempt in range(3):
        name = f"fresh{attempt}_{time.monotonic_ns()}"
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        stores = await asyncio.gather(*(PostgresStore.open(postgres_server.dsn(name)) for _ in range(3)))
        try:
            await stores[0].add_spend("c", 1.0)
            assert (await stores[2].spend("c")).day == pytest.approx(1.0)
        finally:
            for store in stores:
                await store.close()


async def test_two_processes_open_a_fresh_sqlite_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new" / "gw.db"
    stores = await asyncio.gather(*(SqliteStore.open(path) for _ in range(3)))
    try:
        await stores[0].add_spend("c", 1.0)
        assert (await stores[2].spend("c")).day == pytest.approx(1.0)
    finally:
        for store in stores:
            await store.close()


# --- configuration and factory -----------------------------------------------------------------


def test_storage_defaults_to_sqlite_under_data() -> None:
    storage = GatewayConfig().storage
    assert storage.runtime_backend().type == "sqlite" and storage.ledger_backend().type == "sqlite"
    assert (storage.retention_days, storage.on_unavailable) == (90.0, "open")


def test_the_client_management_documents_shape_parses() -> None:
    storage = GatewayConfig.model_validate(
        {"storage": {"runtime": {"type": "redis", "addr": "redis-cluster:6379"}}}).storage
    assert storage.runtime_backend().addr == "redis-cluster:6379"
    assert storage.ledger_backend().type == "sqlite"


def test_a_bad_storage_section_is_reported_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent("""\
        llm_providers:
          - {id: p, type: openai, base_url: "http://127.0.0.1:9", api_keys: ["sk-abcdefgh"], model: m}
        api_keys:
          - key: client-key-1
        storage:
          ledger:
            type: postgres
          runtime: {type: redis, addr: "redis://:s3cret@h:6379", path: x.db}
          on_unavailable: maybe
        """))
    done = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "storage.ledger: Value error, storage type 'postgres' needs 'dsn'" in out
    assert "storage.runtime: Value error, storage type 'redis' takes no 'path'" in out
    assert "storage.on_unavailable" in out
    assert "s3cret" not in out


async def test_the_factory_shares_one_store_when_both_roles_name_it(tmp_path: Path) -> None:
    stores = await open_stores(Storage(type="sqlite", path="gw.db"), base_dir=tmp_path)
    try:
        assert stores.runtime is stores.ledger and stores.runtime.name == "sqlite"
        assert (tmp_path / "gw.db").exists()
    finally:
        await stores.close()


async def test_the_factory_builds_a_runtime_and_a_ledger_store(tmp_path: Path) -> None:
    storage = Storage.model_validate({"path": "ledger.db", "runtime": {"type": "memory"}, "retention_days": 1})
    stores = await open_stores(storage, base_dir=tmp_path)
    try:
        assert isinstance(stores.runtime, AsyncMemoryStore) and stores.ledger.name == "sqlite"
        stores.ledger.record(row(0))  # 2023: far past one day's retention
        stores.ledger.record(LedgerRow(time=time.time(), request_id="new", client_id="c", provider="p", model="m",
                                       key_label="p#1", status=200))
        await stores.ledger.flush()
        assert await stores.prune() == 1
        assert (await stores.ledger.usage_totals("c", 0, 2e9)).total_requests == 1
    finally:
        await stores.close()


async def test_open_backend_reports_an_unreachable_redis() -> None:
    storage = Storage.model_validate({"type": "redis", "addr": f"127.0.0.1:{free_port()}"})
    with pytest.raises(StoreDown):
        await open_backend(storage.runtime_backend())


def test_the_commented_storage_example_is_valid() -> None:
    """Uncommented, config.example.yaml's storage block parses (with its variables filled in)."""
    lines = (ROOT / "config" / "config.example.yaml").read_text().splitlines()
    start = lines.index("# storage:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:].split("  #")[0].rstrip() if line.startswith("# ") else "")
    text = "\n".join(b for b in block if b.strip())
    text = text.replace("${REDIS_PASSWORD}", "x").replace("${POSTGRES_PASSWORD}", "x")
    storage = GatewayConfig.model_validate(yaml.safe_load(text)).storage
    assert storage.runtime_backend().type == "redis" and storage.ledger_backend().type == "postgres"
    assert storage.type == "sqlite" and storage.on_unavailable == "open"
