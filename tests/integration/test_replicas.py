"""Two gateway processes on two ports against one real redis-server: client
limits, key cooldowns, budgets and clients created at runtime are shared and exact."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Callable

import httpx
import pytest

from gateway.core.policy import Budget, Limits
from gateway.store.redis import RedisStore
from gateway.store.values import ClientRecord
from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_store_wiring import budget_config, chat, limited_config
from tests.store.servers import RedisServer

UPSTREAM_KEYS = ["sk-upstream-key-one-111111", "sk-upstream-key-two-222222"]
_prefixes = itertools.count()


def redis_storage(redis: RedisServer) -> str:
    """A ``storage`` section on ``redis`` with a prefix of its own (tests share one server)."""
    return f'storage: {{type: redis, addr: "{redis.addr}", prefix: "replicas{next(_prefixes)}:"}}\n'


def two(start_gateway: Callable[..., Gateway], config: str) -> tuple[Gateway, Gateway]:
    return start_gateway(config), start_gateway(config)


async def _split_burst(urls: list[str], n: int) -> list[int]:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    clients = [httpx.AsyncClient(base_url=u, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=30,
                                 limits=httpx.Limits(max_connections=n)) for u in urls]
    try:
        answers = await asyncio.gather(*(clients[i % len(clients)].post("/v1/chat/completions", json=body)
                                         for i in range(n)))
    finally:
        for client in clients:
            await client.aclose()
    return [a.status_code for a in answers]


@pytest.mark.slow
def test_a_client_limit_holds_exactly_across_two_replicas(start_gateway: Callable[..., Gateway],
                                                          fake: FakeUpstream, redis_server: RedisServer) -> None:
    a, b = two(start_gateway, limited_config(fake, 50, redis_storage(redis_server)))
    statuses = asyncio.run(_split_burst([a.base_url, b.base_url], 200))
    assert statuses.count(200) == 50 and statuses.count(429) == 150, sorted(set(statuses))


def test_a_key_cooled_by_a_429_on_one_replica_is_skipped_by_the_other(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, redis_server: RedisServer) -> None:
    a, b = two(start_gateway, basic_config(fake, redis_storage(redis_server)))
    first, second = UPSTREAM_KEYS
    fake.script(Behaviour(status=429, headers={"Retry-After": "60"},
                          body={"error": {"message": "slow down", "type": "rate_limit"}}), key=first)
    with a.client() as client:
        for _ in range(2):  # whichever key comes first, the first key is tried (and cooled) once
            assert chat(client).status_code == 200
    assert fake.count(first) == 1
    before = fake.count(first)
    with b.client() as client:
        for _ in range(6):
            assert chat(client).status_code == 200
    assert fake.count(first) == before  # b never sent to the key a saw cooled
    assert fake.count(second) >= 6


def test_a_budget_holds_across_two_replicas(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                            redis_server: RedisServer) -> None:
    fake.set_default(Behaviour(text="one"))  # $1 a request
    config = budget_config(fake) + redis_storage(redis_server)
    a, b = two(start_gateway, config)
    with a.client() as on_a, b.client() as on_b:
        statuses = [chat(on_a if i % 2 else on_b).status_code for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2  # $5 in all, not $5 on each


def test_a_client_created_through_one_replica_works_on_the_other_within_a_second(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, redis_server: RedisServer) -> None:
    storage = redis_storage(redis_server)
    a, b = two(start_gateway, basic_config(fake, storage))
    prefix = storage.split('prefix: "')[1].split('"')[0]
    key = "sk-replica-client-key-0123456789"
    with b.client(key) as on_b:
        assert chat(on_b).status_code == 401

        async def create() -> None:  # what a's admin API does: write the shared directory
            store = await RedisStore.open(redis_server.addr, prefix=prefix)
            try:
                await store.create_client(ClientRecord(id="made-on-a", key_digest=hashlib.sha256(key.encode()).digest(),
                                                       limits=Limits(), budget=Budget()))
            finally:
                await store.close()

        asyncio.run(create())
        created = time.monotonic()
        while chat(on_b).status_code != 200:
            assert time.monotonic() - created < 1.5, "not usable on the other replica within a second"
            time.sleep(0.05)
    with a.client(key) as on_a:
        assert chat(on_a).status_code == 200
