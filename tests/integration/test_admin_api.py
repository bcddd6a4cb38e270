"""The admin API: who may call it, the client directory through
HTTP, read-only config clients, the audit log, and clients that survive a restart (SQLite, the
default store). Everything through the real gateway process."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

ADMIN_KEY = "sk-test-admin-client-key-42"
PREFIXES = ("/admin/v1", "/api/admin/v1")
CHAT = {"model": "fake-gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

# every admin route, with an example body for the ones that change something
ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/admin/v1/clients", None),
    ("GET", "/admin/v1/clients/list", None),
    ("POST", "/admin/v1/clients", {"client_id": "x-new"}),
    ("GET", "/admin/v1/clients/app", None),
    ("PUT", "/admin/v1/clients/x-new", {"description": "d"}),
    ("DELETE", "/admin/v1/clients/x-new", None),
    ("POST", "/admin/v1/clients/x-new/rotate", None),
    ("GET", "/admin/v1/metrics/clients/app", None),
    ("GET", "/admin/v1/stats?group_by=provider", None),
    ("GET", "/admin/v1/timeseries", None),
    ("GET", "/admin/v1/requests/recent", None),
    ("GET", "/admin/v1/requests/stream", None),
    ("GET", "/admin/v1/status", None),
    ("GET", "/admin/v1/providers", None),
    ("POST", "/admin/v1/providers/fake/keys", {"api_key": "sk-upstream-key-three-333333"}),
    ("DELETE", "/admin/v1/providers/fake/keys/fake%231", None),
    ("GET", "/admin/metrics", None),
]


def admin_config(fake: FakeUpstream, extra: str = "") -> str:
    """``basic_config`` plus an ``admin: true`` client (the first-steps document's admin-key)."""
    admin_client = f"  - id: ops\n    key: {ADMIN_KEY}\n    allowed_providers: [\"*\"]\n    admin: true\n"
    return basic_config(fake) + admin_client + textwrap.dedent(extra)


def admin(gw: Gateway, key: str = MASTER_KEY) -> httpx.Client:
    return gw.client(key)


def audit_lines(gw: Gateway) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in gw.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "gateway.audit"]


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    return start_gateway(admin_config(fake))


def test_no_key_is_401_and_a_plain_client_403_on_every_route(gw: Gateway) -> None:
    for method, path, body in ROUTES:
        for prefix_path in {path, path.replace("/admin/v1", "/api/admin/v1", 1)}:
            anonymous = httpx.request(method, gw.base_url + prefix_path, json=body, timeout=10)
            assert anonymous.status_code == 401, (method, prefix_path, anonymous.text)
            assert anonymous.json()["error"]["code"] == "invalid_api_key"
            with gw.client(CLIENT_KEY) as plain:
                refused = plain.request(method, prefix_path, json=body)
            assert refused.status_code == 403, (method, prefix_path, refused.text)
            assert refused.json()["error"] == {
                "message": refused.json()["error"]["message"], "type": "authorization_error",
                "code": "admin_required", "param": None}
    with gw.client("sk-wrong-key-0000000000") as wrong:
        assert wrong.get("/admin/v1/clients").status_code == 401
    assert not audit_lines(gw)  # nothing was changed


def test_clients_crud_through_both_prefixes(gw: Gateway) -> None:
    with admin(gw) as api:
        created = api.post("/admin/v1/clients", json={
            "client_id": "team-a", "description": "Team A", "allowed_providers": ["fake"],
            "allowed_models": ["fake-gpt-4o"], "limits": {"req_per_min": 50}, "budget": {"daily_usd": 5}})
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        assert key.startswith("sk-") and len(key) == 51
        view = created.json()["client"]
        assert view["client_id"] == "team-a" and view["source"] == "api" and view["admin"] is False
        assert view["allowed_providers"] == ["fake"] and view["limits"]["req_per_min"] == 50
        assert view["budget"]["daily_usd"] == 5 and view["spend"] == {"day_usd": 0.0, "month_usd": 0.0}
        assert abs(view["created_at"] - time.time()) < 60 and view["last_used"] is None
        assert key not in api.get("/admin/v1/clients/team-a").text

        listed = api.get("/api/admin/v1/clients/list").json()["clients"]
        assert {(c["client_id"], c["source"]) for c in listed} == {("app", "config"), ("ops", "config"),
                                                                   ("team-a", "api")}
        assert api.get("/admin/v1/clients").json()["clients"] == listed
        assert all("key" not in name or name == "api_key" for c in listed for name in c)

        changed = api.put("/api/admin/v1/clients/team-a", json={"description": "Team A2", "limits": {}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["description"] == "Team A2" and changed.json()["limits"]["req_per_min"] is None
        assert changed.json()["allowed_models"] == ["fake-gpt-4o"]  # not given: kept
        assert api.get("/admin/v1/clients/team-a").json()["description"] == "Team A2"

        assert api.delete("/admin/v1/clients/team-a").json() == {"deleted": "team-a"}
        assert api.get("/admin/v1/clients/team-a").status_code == 404
        assert api.delete("/admin/v1/clients/team-a").status_code == 404
        assert api.put("/admin/v1/clients/team-a", json={"description": "x"}).status_code == 404


def test_a_created_client_works_at_once_and_stops_when_deleted_or_rotated(gw: Gateway, fake: FakeUpstream) -> None:
    with admin(gw) as api:
        key = api.post("/admin/v1/clients", json={"client_id": "live", "allowed_providers": ["*"]}).json()["api_key"]
        with gw.client(key) as app:
            assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
        rotated = api.post("/admin/v1/clients/live/rotate")
        assert rotated.status_code == 200, rotated.text
        new_key = rotated.json()["api_key"]
        assert new_key != key and new_key.startswith("sk-")
        with gw.client(key) as old, gw.client(new_key) as new:
            assert old.post("/v1/chat/completions", json=CHAT).status_code == 401
            assert new.post("/v1/chat/completions", json=CHAT).status_code == 200
        given = api.post("/admin/v1/clients/live/rotate", json={"api_key": "sk-chosen-by-operator-1"})
        assert given.json()["api_key"] == "sk-chosen-by-operator-1"
        with gw.client("sk-chosen-by-operator-1") as chosen:
            assert chosen.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert api.delete("/admin/v1/clients/live").status_code == 200
        with gw.client("sk-chosen-by-operator-1") as gone:
            assert gone.post("/v1/chat/completions", json=CHAT).status_code == 401


def test_changes_to_a_client_apply_on_its_next_request(gw: Gateway) -> None:
    with admin(gw) as api:
        key = api.post("/admin/v1/clients", json={"client_id": "narrow", "allowed_providers": ["fake"]}).json()[
            "api_key"]
        with gw.client(key) as app:
            assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
            api.put("/admin/v1/clients/narrow", json={"allowed_providers": ["elsewhere"]})
            refused = app.post("/v1/chat/completions", json=CHAT)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "provider_not_allowed"


def test_an_admin_client_from_the_directory_may_call_the_admin_api(gw: Gateway) -> None:
    with admin(gw) as api:
        made = api.post("/admin/v1/clients", json={"client_id": "second-admin", "admin": True})
        plain = api.post("/admin/v1/clients", json={"client_id": "plain-dyn"})
    with gw.client(made.json()["api_key"]) as second:
        assert second.get("/admin/v1/clients").status_code == 200
    with gw.client(plain.json()["api_key"]) as dyn:
        refused = dyn.get("/admin/v1/clients")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"


def test_config_clients_are_read_only_and_their_ids_and_keys_taken(gw: Gateway) -> None:
    with admin(gw, ADMIN_KEY) as api:  # the admin client of config.yaml
        view = api.get("/admin/v1/clients/app").json()
        assert view["source"] == "config" and view["created_at"] is None
        for method, path, body in [("PUT", "/admin/v1/clients/app", {"description": "x"}),
                                   ("DELETE", "/admin/v1/clients/app", None),
                                   ("POST", "/admin/v1/clients/app/rotate", None),
                                   ("POST", "/admin/v1/clients", {"client_id": "app"})]:
            refused = api.request(method, path, json=body)
            assert refused.status_code == 409, (method, path, refused.text)
            assert refused.json()["error"]["code"] == "conflict"
        for taken in (CLIENT_KEY, MASTER_KEY):
            clash = api.post("/admin/v1/clients", json={"client_id": "thief", "api_key": taken})
            assert clash.status_code == 409 and clash.json()["error"]["param"] == "api_key"
            assert taken not in clash.text
        assert api.post("/admin/v1/clients", json={"client_id": "dup"}).status_code == 201
        again = api.post("/admin/v1/clients", json={"client_id": "dup"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(("body", "param"), [
    ({}, "client_id"),
    ({"client_id": ""}, "client_id"),
    ({"client_id": "has/slash"}, "client_id"),
    ({"client_id": "list"}, "client_id"),
    ({"client_id": "ok", "api_key": "short"}, "api_key"),
    ({"client_id": "ok", "api_key": " sk-spaces-around-1234 "}, "api_key"),
    ({"client_id": "ok", "limits": {"req_per_min": 0}}, "limits.req_per_min"),
    ({"client_id": "ok", "budget": {"daily_usd": "lots"}}, "budget.daily_usd"),
    ({"client_id": "ok", "allowed_providers": "openai"}, "allowed_providers"),
    ({"client_id": "ok", "allowed_providers": []}, "allowed_providers"),
    ({"client_id": "ok", "colour": "blue"}, "colour"),
    ({"client_id": "ok", "admin": "maybe"}, "admin"),
])
def test_bad_input_is_a_400_naming_the_field(gw: Gateway, body: dict[str, object], param: str) -> None:
    with admin(gw) as api:
        answer = api.post("/admin/v1/clients", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and param in error["message"]
    assert "sk-spaces-around" not in answer.text


def test_bad_bodies_of_put_and_rotate_are_400s(gw: Gateway) -> None:
    with admin(gw) as api:
        api.post("/admin/v1/clients", json={"client_id": "target"})
        assert api.put("/admin/v1/clients/target", json={"api_key": "sk-new-key-123456"}).json()["error"][
            "param"] == "api_key"  # keys change only by rotation
        assert api.put("/admin/v1/clients/target", content=b"{not json").status_code == 400
        assert api.put("/admin/v1/clients/target", json=[1]).status_code == 400
        assert api.post("/admin/v1/clients/target/rotate", json={"api_key": 5}).json()["error"][
            "param"] == "api_key"


def test_every_change_is_one_audit_line_without_a_key(gw: Gateway) -> None:
    with admin(gw, ADMIN_KEY) as api:
        key = api.post("/admin/v1/clients", json={"client_id": "audited", "api_key": "sk-audited-key-99999"}).json()[
            "api_key"]
        api.put("/admin/v1/clients/audited", json={"description": "x"})
        rotated = api.post("/admin/v1/clients/audited/rotate").json()["api_key"]
        api.delete("/admin/v1/clients/audited")
        api.get("/admin/v1/clients")  # reads are not changes
    with admin(gw) as api:
        api.post("/admin/v1/clients", json={"client_id": "by-master"})
    wait_until(lambda: len(audit_lines(gw)) >= 5, what="audit lines")
    lines = audit_lines(gw)
    assert [(a["who"], a["action"], a["target"]) for a in lines] == [
        ("client:ops", "client.create", "audited"), ("client:ops", "client.update", "audited"),
        ("client:ops", "client.rotate", "audited"), ("client:ops", "client.delete", "audited"),
        ("master", "client.create", "by-master")]
    log = gw.logs()
    for secret in (key, rotated, ADMIN_KEY, MASTER_KEY):
        assert secret not in log


def test_clients_created_through_the_api_survive_a_restart(start_gateway: Callable[..., Gateway],
                                                           fake: FakeUpstream) -> None:
    gw = start_gateway(admin_config(fake))  # no storage section: SQLite under data/
    with admin(gw) as api:
        made = api.post("/admin/v1/clients", json={"client_id": "durable", "description": "keeps"})
    key = made.json()["api_key"]
    with gw.client(key) as app:
        assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
    gw.stop()
    assert (gw.workdir / "data" / "gateway.db").is_file()
    gw.start()
    with admin(gw) as api:
        view = api.get("/admin/v1/clients/durable").json()
    assert view["description"] == "keeps" and view["created_at"] == made.json()["client"]["created_at"]
    assert view["last_used"] is not None
    with gw.client(key) as app:
        assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
