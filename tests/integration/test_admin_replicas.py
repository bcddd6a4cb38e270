"""Two gateway replicas on one Redis (Debian's redis-server): a client created, changed or
deleted through one replica's admin API works or stops on the other, and both answer usage
from the one shared ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.fake_upstream import FakeUpstream
from tests.integration.test_admin_api import CHAT, admin_config, wait_until
from tests.store.servers import RedisServer, running_redis


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    yield from running_redis()


def test_a_client_made_on_one_replica_works_and_stops_on_the_other(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, redis: RedisServer) -> None:
    config = admin_config(fake, f"storage:\n  type: redis\n  addr: \"{redis.addr}\"\n  prefix: \"replicas:\"\n")
    one, two = start_gateway(config), start_gateway(config)
    with one.client(MASTER_KEY) as api:
        made = api.post("/admin/v1/clients", json={"client_id": "shared", "allowed_providers": ["fake"]})
    assert made.status_code == 201, made.text
    key = made.json()["api_key"]
    with two.client(key) as app:
        assert app.post("/v1/chat/completions", json=CHAT).status_code == 200  # at once on the other replica
    with two.client(MASTER_KEY) as api:
        assert api.get("/admin/v1/clients/shared").json()["source"] == "api"
        assert api.put("/admin/v1/clients/shared", json={"allowed_providers": ["elsewhere"]}).status_code == 200

    def refused_on_one() -> bool:
        with one.client(key) as app:
            return app.post("/v1/chat/completions", json=CHAT).status_code == 403
    wait_until(refused_on_one, timeout=5, what="the change to reach the other replica")

    with one.client(MASTER_KEY) as api:
        wait_until(lambda: api.get("/admin/v1/metrics/clients/shared").json()["total_requests"] >= 2,
                   what="both replicas' rows in the shared ledger")
        assert api.delete("/admin/v1/clients/shared").status_code == 200

    def gone_on_two() -> bool:
        with two.client(key) as app:
            return app.post("/v1/chat/completions", json=CHAT).status_code == 401
    wait_until(gone_on_two, timeout=5, what="the deletion to reach the other replica")
