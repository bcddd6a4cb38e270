"""The shared store lost while serving: real redis-server and PostgreSQL stopped
and started again under load. ``on_unavailable: open`` serves (counted locally, a loud metric,
readiness "degraded"); ``closed`` answers 503; both recover without a restart; never a 500; no
acknowledged request is missing from the ledger."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.conftest import Gateway, basic_config
from tests.fake_upstream import FakeUpstream
from tests.integration.test_store_wiring import chat, ledger_rows
from tests.store.servers import (
    PostgresServer,
    RedisServer,
    running_postgres,
    running_redis,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own: it is stopped and started again."""
    yield from running_redis()


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    yield from running_postgres("gw")


class Load:
    """Requests in a loop from a few threads; every status and every acknowledged request id."""

    def __init__(self, gateway: Gateway, threads: int = 3) -> None:
        self.gateway = gateway
        self.statuses: list[int] = []
        self.acknowledged: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with self.gateway.client(timeout=20) as client:
            while not self._stop.is_set():
                answer = chat(client)
                self.statuses.append(answer.status_code)
                if answer.status_code == 200:
                    self.acknowledged.append(answer.headers["x-request-id"])
                time.sleep(0.01)

    def since(self, mark: int) -> list[int]:
        return self.statuses[mark:]

    @contextmanager
    def running(self) -> Iterator[Load]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(30)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def store_gauge(gateway: Gateway) -> float:
    for line in gateway.metrics().splitlines():
        if line.startswith("gateway_store_unavailable{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no gateway_store_unavailable metric")


def test_redis_lost_while_serving_open_serves_locally_and_recovers(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, redis: RedisServer) -> None:
    storage = f'storage:\n  runtime: {{type: redis, addr: "{redis.addr}"}}\n  on_unavailable: open\n'
    gateway = start_gateway(basic_config(fake, storage))
    with Load(gateway).running() as load:
        wait_for(lambda: len(load.statuses) >= 20, 10, "no load")
        redis.stop()
        mark = len(load.statuses)
        wait_for(lambda: gateway.readiness()["status"] == "degraded", 10, "readiness never said degraded")
        assert store_gauge(gateway) == 1
        wait_for(lambda: len(load.since(mark)) >= 30, 10, "requests stalled while redis was down")
        assert set(load.since(mark)) == {200}  # served, counted locally
        redis.start()
        wait_for(lambda: gateway.readiness()["status"] == "ready", 10, "did not recover without a restart")
        wait_for(lambda: store_gauge(gateway) == 0, 5, "the gauge stayed up")
        back = len(load.statuses)
        wait_for(lambda: len(load.since(back)) >= 20, 10, "no requests after recovery")
    assert 500 not in load.statuses and set(load.statuses) == {200}
    assert "STORE UNAVAILABLE" in gateway.logs() and "store reachable again" in gateway.logs()
    assert gateway.logs().count("STORE UNAVAILABLE") == 1  # one outage, one switch: no flapping after it
    gateway.stop()
    logged = {row["request_id"] for row in ledger_rows(gateway.workdir / "data" / "gateway.db")}
    assert set(load.acknowledged) <= logged


def test_redis_lost_while_serving_closed_answers_503_and_recovers(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, redis: RedisServer) -> None:
    storage = f'storage:\n  runtime: {{type: redis, addr: "{redis.addr}"}}\n  on_unavailable: closed\n'
    gateway = start_gateway(basic_config(fake, storage))
    with gateway.client() as client:
        assert chat(client).status_code == 200
        redis.stop()
        refused = chat(client)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable"
        assert refused.headers["Retry-After"] == "1"
        assert gateway.readiness()["status"] == "degraded"
        redis.start()
        wait_for(lambda: chat(client).status_code == 200, 10, "did not recover without a restart")


def test_postgres_ledger_lost_while_serving_loses_no_acknowledged_row(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, postgres: PostgresServer) -> None:
    dsn = postgres.dsn("gw")
    storage = f'storage:\n  type: memory\n  ledger: {{type: postgres, dsn: "{dsn}"}}\n  ledger_flush_s: 0.2\n'
    gateway = start_gateway(basic_config(fake, storage))
    with Load(gateway).running() as load:
        wait_for(lambda: len(load.statuses) >= 20, 10, "no load")
        postgres.stop()
        mark = len(load.statuses)
        wait_for(lambda: len(load.since(mark)) >= 30, 15, "requests stalled while postgres was down")
        postgres.start()
        back = len(load.statuses)
        wait_for(lambda: len(load.since(back)) >= 20, 15, "no requests after postgres came back")
    assert 500 not in load.statuses and set(load.statuses) == {200}
    gateway.stop()  # flushes what is still buffered
    with psycopg.connect(dsn) as conn:
        logged = {r[0] for r in conn.execute("SELECT request_id FROM ledger")}
    assert set(load.acknowledged) <= logged
    assert len(load.acknowledged) >= 70
