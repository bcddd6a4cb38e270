"""One id, one client: when config.yaml holds the id of a client created through the admin API,
config.yaml's client is in force and the API's is shadowed (its key refused everywhere, on every
worker) until it is deleted through the API or config.yaml drops the id. No key stays live that
neither an API call nor a config edit can end. Everything through the real gateway process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway, free_port
from tests.fake_upstream import FakeUpstream
from tests.integration.test_admin_api import CHAT, admin_config, wait_until
from tests.store.servers import RedisServer, running_redis

CONFIG_KEY = "sk-test-config-team-x-key-777"


def config_client(client_id: str, key: str = CONFIG_KEY) -> str:
    """One more entry of ``api_keys`` (appended after ``admin_config``'s clients)."""
    return f"  - id: {client_id}\n    key: {key}\n    allowed_providers: [\"*\"]\n"


def chat_status(gw: Gateway, key: str) -> int:
    with gw.client(key) as app:  # a new connection each time: several workers all get asked
        return app.post("/v1/chat/completions", json=CHAT).status_code


def create(gw: Gateway, client_id: str, **fields: object) -> str:
    with gw.client(MASTER_KEY) as api:
        made = api.post("/admin/v1/clients", json={"client_id": client_id, "allowed_providers": ["*"], **fields})
    assert made.status_code == 201, made.text
    return str(made.json()["api_key"])


def edit_config(gw: Gateway, config: str) -> None:
    version = gw.readiness()["config"]["version"]
    gw.write_config(config)
    gw.wait_for_version_change(version)


def views_of(gw: Gateway, client_id: str) -> list[tuple[str, bool]]:
    with gw.client(MASTER_KEY) as api:
        listed = api.get("/admin/v1/clients/list").json()["clients"]
    return [(c["source"], c["shadowed"]) for c in listed if c["client_id"] == client_id]


def test_a_config_client_with_the_id_of_an_api_client_ends_its_key_and_delete_removes_it(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gw = start_gateway(admin_config(fake))
    key = create(gw, "team-x", admin=True)
    assert chat_status(gw, key) == 200
    with gw.client(key) as api_client:
        assert api_client.get("/admin/v1/clients").status_code == 200

    edit_config(gw, admin_config(fake) + config_client("team-x"))  # config.yaml takes the id
    assert chat_status(gw, key) == 401
    with gw.client(key) as api_client:
        assert api_client.get("/admin/v1/clients").status_code == 401  # its admin rights ended too
    assert chat_status(gw, CONFIG_KEY) == 200
    assert views_of(gw, "team-x") == [("api", True), ("config", False)]
    assert gw.readiness()["config"]["shadowed_clients"] == ["team-x"]
    wait_until(lambda: "config.yaml holds the id of clients created through the admin API" in gw.logs(),
               what="the warning naming the shadowed client")

    with gw.client(MASTER_KEY) as api:
        for method, path in (("PUT", "/admin/v1/clients/team-x"), ("POST", "/admin/v1/clients/team-x/rotate")):
            refused = api.request(method, path, json={"description": "x"} if method == "PUT" else None)
            assert refused.status_code == 409, refused.text
            assert "DELETE" in refused.json()["error"]["message"]
        assert api.get("/admin/v1/clients/team-x").json()["source"] == "config"
        assert api.delete("/admin/v1/clients/team-x").json() == {"deleted": "team-x", "shadowed": True}
        again = api.delete("/admin/v1/clients/team-x")
        assert again.status_code == 409 and "DELETE" not in again.json()["error"]["message"]
    assert views_of(gw, "team-x") == [("config", False)]
    assert gw.readiness()["config"]["shadowed_clients"] == []
    assert chat_status(gw, CONFIG_KEY) == 200  # config.yaml's client is untouched

    edit_config(gw, admin_config(fake))  # config.yaml drops the id: nothing comes back
    assert chat_status(gw, key) == 401 and chat_status(gw, CONFIG_KEY) == 401
    with gw.client(MASTER_KEY) as api:
        assert api.get("/admin/v1/clients/team-x").status_code == 404
    assert key not in gw.logs() and CONFIG_KEY not in gw.logs()


def test_a_shadowed_client_left_in_place_comes_back_when_config_drops_the_id(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gw = start_gateway(admin_config(fake))
    key = create(gw, "team-y")
    edit_config(gw, admin_config(fake) + config_client("team-y"))
    assert chat_status(gw, key) == 401
    edit_config(gw, admin_config(fake))
    assert views_of(gw, "team-y") == [("api", False)]
    assert chat_status(gw, key) == 200 and chat_status(gw, CONFIG_KEY) == 401


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    yield from running_redis()


def test_a_gateway_that_starts_with_the_clash_starts_and_refuses_the_shadowed_key_on_every_worker(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, redis: RedisServer) -> None:
    storage = f"storage:\n  type: redis\n  addr: \"{redis.addr}\"\n  prefix: \"clash:\"\n"
    gw = start_gateway(admin_config(fake, storage), workers=2)
    key = create(gw, "team-z")
    assert chat_status(gw, key) == 200
    gw.stop()
    gw.write_config(admin_config(fake) + config_client("team-z") + storage)  # edited while stopped
    gw.start()
    assert [chat_status(gw, key) for _ in range(20)] == [401] * 20
    assert [chat_status(gw, CONFIG_KEY) for _ in range(5)] == [200] * 5
    assert gw.readiness()["config"]["shadowed_clients"] == ["team-z"]
    assert "config.yaml holds the id of clients created through the admin API" in gw.logs()
    with gw.client(MASTER_KEY) as api:
        assert api.delete("/admin/v1/clients/team-z").status_code == 200
    assert views_of(gw, "team-z") == [("config", False)]


def test_a_dashboard_session_of_a_shadowed_admin_client_ends(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gw = start_gateway(admin_config(fake))
    key = create(gw, "ops-2", admin=True)
    with httpx.Client(base_url=gw.base_url, timeout=15) as browser:
        assert browser.post("/ui/api/login", json={"key": key}).status_code == 200
        assert browser.get("/admin/v1/clients").status_code == 200
        edit_config(gw, admin_config(fake) + config_client("ops-2"))  # a plain client of config.yaml
        assert browser.get("/admin/v1/clients").status_code == 401
        assert browser.post("/ui/api/login", json={"key": key}).status_code == 401


def add_client(gw: Gateway, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "add-client", *argv], cwd=gw.workdir, env=gw.env,
                          capture_output=True, text=True, timeout=60)


def test_add_client_skips_and_refuses_the_ids_of_api_clients(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gw = start_gateway(admin_config(fake))  # clients "app" and "ops": add-client would pick client-003
    key = create(gw, "client-003")
    added = add_client(gw)
    assert added.returncode == 0, added.stderr
    new_key = added.stdout.strip()
    text = gw.config_path.read_text()
    assert "id: client-003" not in text and "id: client-004" in text
    wait_until(lambda: chat_status(gw, new_key) == 200, what="the added client")
    assert chat_status(gw, key) == 200  # the API's client-003 is not shadowed

    refused = add_client(gw, "--id", "client-003")
    assert refused.returncode != 0
    assert "created through the admin API" in refused.stderr and "DELETE /admin/v1/clients/client-003" in refused.stderr
    assert gw.config_path.read_text() == text


def test_add_client_with_the_store_unreachable_adds_the_client_and_warns(
        tmp_path: Path, fake: FakeUpstream) -> None:
    storage = f"storage:\n  type: redis\n  addr: \"127.0.0.1:{free_port()}\"\n"  # nothing listens there
    gw = Gateway(tmp_path, admin_config(fake) + storage)  # not started: add-client works on the files
    added = add_client(gw, "--id", "offline-app")
    assert added.returncode == 0, added.stderr
    assert "cannot read the client directory" in added.stderr and added.stdout.strip() not in added.stderr
    assert "id: offline-app" in gw.config_path.read_text()
