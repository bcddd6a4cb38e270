"""The store wired into the gateway: SQLite by default under the data dir, spend and the
usage ledger surviving a restart, clients created in the store's directory, several workers
sharing limits through the file, and a clear error when a configured store cannot be reached."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.core.policy import Budget, Limits
from gateway.store.sqlite import SqliteStore
from gateway.store.values import ClientRecord
from tests.conftest import CLIENT_KEY, Gateway, basic_config, free_port
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.store.servers import RedisServer

DOLLAR_A_TOKEN = "pricing: {input_token_cost: 0.0, output_token_cost: 1000.0}"  # $1 per output token


def priced_config(fake: FakeUpstream, extra: str = "") -> str:
    """``basic_config`` where every answer of one word costs exactly $1."""
    return basic_config(fake, extra).replace("pricing: {input_token_cost: 0.5, output_token_cost: 1.5}",
                                             DOLLAR_A_TOKEN)


def chat(client: httpx.Client, model: str = "fast") -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "max_tokens": 1,
                                                      "messages": [{"role": "user", "content": "hi"}]})


def ledger_rows(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute("SELECT * FROM ledger ORDER BY time"))


BUDGET = """
api_keys:
  - id: app
    key: {key}
    allowed_providers: ["*"]
    budget: {{daily_usd: 5}}
"""


def budget_config(fake: FakeUpstream) -> str:
    # the client of basic_config, with a $5 daily budget
    base = priced_config(fake)
    head = base[:base.index("\napi_keys:") + 1]
    return head + textwrap.dedent(BUDGET.format(key=CLIENT_KEY))


def test_spend_survives_a_restart(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text="one"))
    gateway = start_gateway(budget_config(fake))
    with gateway.client() as client:
        for _ in range(3):
            assert chat(client).status_code == 200  # $3 of $5
    gateway.stop()
    assert (gateway.workdir / "data" / "gateway.db").is_file()  # the default store: sqlite under the data dir
    gateway.start()
    with gateway.client() as client:
        assert [chat(client).status_code for _ in range(2)] == [200, 200]  # the $2 left
        refused = chat(client)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"


def test_every_finished_request_is_one_ledger_row(start_gateway: Callable[..., Gateway],
                                                  fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text="one"))
    gateway = start_gateway(priced_config(fake))
    with gateway.client() as client:
        assert chat(client).status_code == 200
        assert chat(client, model="no-such-model").status_code == 400
        stream = client.post("/v1/chat/completions", json={
            "model": "fast", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}]})
        assert stream.status_code == 200
    with gateway.client("sk-not-a-client-key-0000000000") as stranger:
        assert chat(stranger).status_code == 401  # no client: nothing to charge, no row
    gateway.stop()  # the lifespan's shutdown flushes what the batch writer still holds
    rows = ledger_rows(gateway.workdir / "data" / "gateway.db")
    assert len(rows) == 3
    ok, refused, streamed = rows
    assert (ok["client_id"], ok["provider"], ok["model"], ok["status"]) == ("app", "fake", "fake-gpt-4o-mini", 200)
    assert ok["key_label"].startswith("fake#") and ok["tokens_out"] == 1 and ok["cost_usd"] == pytest.approx(1.0)
    assert ok["latency_ms"] > 0 and ok["stream"] == 0 and ok["request_id"]
    assert refused["status"] >= 400 and refused["error_code"] and refused["cost_usd"] == 0
    assert streamed["stream"] == 1 and streamed["status"] == 200 and streamed["tokens_out"] == 1


def test_a_client_created_in_the_store_works_within_a_second_and_stops_when_deleted(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake))
    key = "sk-dynamic-client-key-0123456789"
    db = gateway.workdir / "data" / "gateway.db"
    with gateway.client(key) as client:
        assert chat(client).status_code == 401  # cached as unknown: the next lookups hit the cache

        async def create() -> None:
            store = await SqliteStore.open(db)  # what the admin API does in another process
            try:
                await store.create_client(ClientRecord(id="dyn", key_digest=hashlib.sha256(key.encode()).digest(),
                                                       limits=Limits(req_per_min=1), budget=Budget()))
            finally:
                await store.close()

        asyncio.run(create())
        created = time.monotonic()
        while chat(client).status_code != 200:
            assert time.monotonic() - created < 1.5, "a client created in the store was not usable within a second"
            time.sleep(0.05)
        assert chat(client).status_code == 429  # its own limits apply (1 a minute)

        async def delete() -> None:
            store = await SqliteStore.open(db)
            try:
                assert await store.delete_client("dyn")
            finally:
                await store.close()

        asyncio.run(delete())
        deleted = time.monotonic()
        while chat(client).status_code != 401:
            assert time.monotonic() - deleted < 1.5, "a deleted client still worked after a second"
            time.sleep(0.05)


async def _burst(base_url: str, n: int, key: str = CLIENT_KEY) -> list[int]:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30, limits=httpx.Limits(max_connections=n)) as client:
        body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(n)))
    return [a.status_code for a in answers]


def limited_config(fake: FakeUpstream, rpm: int, storage: str = "") -> str:
    limited = basic_config(fake).replace('    allowed_providers: ["*"]\n',
                                         f'    allowed_providers: ["*"]\n    limits: {{req_per_min: {rpm}}}\n')
    return limited + textwrap.dedent(storage)


def test_several_workers_on_sqlite_alone_are_refused_with_the_way_out(tmp_path: Path, fake: FakeUpstream) -> None:
    gateway = Gateway(tmp_path, basic_config(fake), workers=2)  # the default storage: sqlite
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, env=gateway.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    assert "GATEWAY_WORKERS=2 with storage type 'sqlite'" in done.stderr
    assert "runtime: {type: redis" in done.stderr


@pytest.mark.slow
def test_two_workers_share_a_client_limit_exactly_through_redis(start_gateway: Callable[..., Gateway],
                                                                 fake: FakeUpstream, redis_server: RedisServer) -> None:
    storage = f'storage: {{runtime: {{type: redis, addr: "{redis_server.addr}", prefix: "workers:"}}}}\n'
    gateway = start_gateway(limited_config(fake, 20, storage), workers=2)
    statuses = asyncio.run(_burst(gateway.base_url, 60))
    assert statuses.count(200) == 20 and statuses.count(429) == 40, statuses


def test_an_unreachable_store_at_start_is_a_clear_error(tmp_path: Path, fake: FakeUpstream) -> None:
    port = free_port()  # nothing listens there
    gateway = Gateway(tmp_path, basic_config(fake, f'storage: {{type: redis, addr: "127.0.0.1:{port}"}}\n'))
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, env=gateway.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    assert f"redis store redis://127.0.0.1:{port}: unreachable" in done.stderr
    assert "Traceback" not in done.stderr
