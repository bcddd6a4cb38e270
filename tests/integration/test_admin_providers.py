"""Providers and their keys at runtime, through the real gateway process:
each key's state, and keys added or removed through the admin API — written to .env (mode 600)
and config.yaml (comments kept), under the operator lock, validated like a reload, live at once."""

from __future__ import annotations

import os
import stat
import subprocess
import textwrap
import time
from collections.abc import Callable

import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_admin_api import CHAT, admin_config, audit_lines, wait_until

KEY_ONE, KEY_TWO = "sk-upstream-key-one-111111", "sk-upstream-key-two-222222"
NEW_KEY = "sk-upstream-key-new-333333"


def commented(fake: FakeUpstream) -> str:
    """The admin config with operator comments that an edit must keep."""
    return "# operator notes: keep me\n" + admin_config(fake).replace(
        "    models: [fake-gpt-4o, fake-gpt-4o-mini]\n",
        "    models: [fake-gpt-4o, fake-gpt-4o-mini]  # the two we pay for\n")


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    return start_gateway(commented(fake))


def providers(gw: Gateway) -> dict[str, dict]:
    with gw.client(MASTER_KEY) as api:
        answer = api.get("/admin/v1/providers")
    assert answer.status_code == 200, answer.text
    return {p["id"]: p for p in answer.json()["providers"]}


def keys_of(gw: Gateway, provider: str = "fake") -> dict[str, dict]:
    return {k["label"]: k for k in providers(gw)[provider]["keys"]}


def test_providers_show_each_keys_state(gw: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(status=429, headers={"Retry-After": "120"}), key=KEY_ONE)
    with gw.client(CLIENT_KEY) as app:
        for _ in range(3):
            assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
    listed = providers(gw)["fake"]
    assert listed["type"] == "openai-compatible" and listed["models"] == ["fake-gpt-4o", "fake-gpt-4o-mini"]
    wait_until(lambda: sum(k["requests_1h"] for k in keys_of(gw).values()) == 3, what="ledger rows")
    keys = keys_of(gw)
    assert set(keys) == {"fake#1", "fake#2"}
    one, two = keys["fake#1"], keys["fake#2"]
    assert one["state"] == "cooling" and 100 < one["until"] - time.time() <= 121
    assert one["rate_limited_1h"] == 1 and one["requests_1h"] == 0 and one["in_flight"] == 0
    assert two == {"label": "fake#2", "state": "ok", "until": None, "in_flight": 0, "requests_1h": 3,
                   "rate_limited_1h": 0}
    text = str(providers(gw))
    assert KEY_ONE not in text and KEY_TWO not in text


def test_a_key_added_to_an_api_keys_list_goes_to_env_and_is_live_at_once(gw: Gateway, fake: FakeUpstream) -> None:
    with gw.client(MASTER_KEY) as api:
        added = api.post("/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY})
    assert added.status_code == 201, added.text
    assert added.json()["label"] == "fake#3" and added.json()["env_variables"] == ["FAKE_API_KEY"]
    assert NEW_KEY not in added.text
    env = gw.env_path.read_text()
    assert f"FAKE_API_KEY={NEW_KEY}\n" in env and stat.S_IMODE(gw.env_path.stat().st_mode) == 0o600
    config = gw.config_path.read_text()
    assert 'api_keys: ["sk-upstream-key-one-111111", "sk-upstream-key-two-222222", "${FAKE_API_KEY}"]' in config
    assert "# operator notes: keep me\n" in config and "  # the two we pay for\n" in config
    assert NEW_KEY not in config
    assert set(keys_of(gw)) == {"fake#1", "fake#2", "fake#3"}  # no wait: this answer saw it
    fake.set_default(Behaviour(status=429, headers={"Retry-After": "60"}), key=KEY_ONE)
    fake.set_default(Behaviour(status=429, headers={"Retry-After": "60"}), key=KEY_TWO)
    with gw.client(CLIENT_KEY) as app:
        assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert fake.count(key=NEW_KEY) == 1
    with gw.client(MASTER_KEY) as api:
        second = api.post("/api/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY + "-b"})
        assert second.json()["env_variables"] == ["FAKE_API_KEY_2"] and second.json()["label"] == "fake#4"
        again = api.post("/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY})
        assert again.status_code == 409 and NEW_KEY not in again.text


def test_removing_a_key_of_the_list_edits_the_config_and_stops_using_it(gw: Gateway, fake: FakeUpstream) -> None:
    with gw.client(MASTER_KEY) as api:
        api.post("/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY})
        removed = api.delete("/admin/v1/providers/fake/keys/fake%232")
        assert removed.status_code == 200, removed.text
        assert removed.json()["deleted"] == "fake#2"
        config = gw.config_path.read_text()
        assert KEY_TWO not in config and 'api_keys: ["sk-upstream-key-one-111111", "${FAKE_API_KEY}"]' in config
        assert "# operator notes: keep me\n" in config
        assert set(keys_of(gw)) == {"fake#1", "fake#2"}  # the pool renumbered: the new key is #2 now
        gone = api.delete("/admin/v1/providers/fake/keys/2")  # a bare number is the provider's key N
        assert gone.json()["env_variables"] == ["FAKE_API_KEY"]
        assert "FAKE_API_KEY" not in gw.env_path.read_text() and "${FAKE_API_KEY}" not in gw.config_path.read_text()
        assert api.delete("/admin/v1/providers/fake/keys/fake%239").status_code == 404
        assert api.delete("/admin/v1/providers/nope/keys/1").status_code == 404
        assert api.post("/admin/v1/providers/nope/keys", json={"api_key": NEW_KEY}).status_code == 404
    fake.reset()
    with gw.client(CLIENT_KEY) as app:
        for _ in range(3):
            assert app.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert fake.count(key=KEY_ONE) == 3


def test_a_provider_drawing_keys_from_the_environment_gets_the_next_numbered_variable(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    config = textwrap.dedent(f"""
    llm_providers:
      - id: openai-env
        type: openai
        base_url: {fake.base_url}
        models: [fake-gpt-4o]
    api_keys:
      - id: app
        key: {CLIENT_KEY}
    """)
    gw = start_gateway(config)
    with gw.env_path.open("a") as handle:
        handle.write(f"OPENAI_API_KEY={KEY_ONE}\nOPENAI_API_KEY_2={KEY_TWO}\n")
    wait_until(lambda: set(keys_of(gw, "openai-env")) == {"openai-env#1", "openai-env#2"}, what="reload")
    before = gw.config_path.read_text()
    with gw.client(MASTER_KEY) as api:
        added = api.post("/admin/v1/providers/openai-env/keys", json={"api_key": NEW_KEY})
        assert added.json()["env_variables"] == ["OPENAI_API_KEY_3"] and added.json()["label"] == "openai-env#3"
        assert f"OPENAI_API_KEY_3={NEW_KEY}" in gw.env_path.read_text() and gw.config_path.read_text() == before
        removed = api.delete("/admin/v1/providers/openai-env/keys/openai-env%232")
        assert removed.json()["env_variables"] == ["OPENAI_API_KEY_2"]
    env = gw.env_path.read_text()
    assert "OPENAI_API_KEY_2" not in env and KEY_ONE in env and NEW_KEY in env
    assert set(keys_of(gw, "openai-env")) == {"openai-env#1", "openai-env#2"}


def test_a_provider_with_api_keys_env_gets_the_next_variable_of_its_own_series(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    config = textwrap.dedent(f"""
    llm_providers:
      - id: pool
        type: openai
        base_url: {fake.base_url}
        api_keys_env: TEAM_POOL_KEY
        models: [fake-gpt-4o]
    api_keys:
      - id: app
        key: {CLIENT_KEY}
    """)
    gw = start_gateway(config)
    with gw.env_path.open("a") as handle:
        handle.write(f"TEAM_POOL_KEY={KEY_ONE}\n")
    wait_until(lambda: set(keys_of(gw, "pool")) == {"pool#1"}, what="reload")
    with gw.client(MASTER_KEY) as api:
        added = api.post("/admin/v1/providers/pool/keys", json={"api_key": NEW_KEY})
        assert added.status_code == 201, added.text
        assert added.json()["env_variables"] == ["TEAM_POOL_KEY_2"] and added.json()["label"] == "pool#2"
        removed = api.delete("/admin/v1/providers/pool/keys/pool%231")
        assert removed.status_code == 200, removed.text
        assert removed.json()["env_variables"] == ["TEAM_POOL_KEY"]
    env = gw.env_path.read_text()
    assert f"TEAM_POOL_KEY_2={NEW_KEY}" in env and KEY_ONE not in env
    assert set(keys_of(gw, "pool")) == {"pool#1"}


def test_an_edit_that_would_not_load_is_refused_and_nothing_is_written(gw: Gateway, fake: FakeUpstream) -> None:
    broken = admin_config(fake) + "model_aliases:\n  fast: nowhere:model\n"
    gw.write_config(broken)  # the watcher refuses it too; the last good config keeps serving
    env_before = gw.env_path.read_text()
    with gw.client(MASTER_KEY) as api:
        refused = api.post("/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY})
    assert refused.status_code == 400, refused.text
    assert "duplicate key" in refused.json()["error"]["message"] and NEW_KEY not in refused.text
    assert gw.env_path.read_text() == env_before and gw.config_path.read_text() == broken
    with gw.client(MASTER_KEY) as api:
        for body, param in [({}, "api_key"), ({"api_key": "has space in it"}, "api_key"),
                            ({"api_key": "sk-has-a-dollar-$HOME"}, "api_key")]:
            bad = api.post("/admin/v1/providers/fake/keys", json=body)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text


def test_key_edits_wait_for_the_operator_lock(gw: Gateway) -> None:
    lock = gw.workdir / "run" / "gateway.lock"
    lock.parent.mkdir(exist_ok=True)
    holder = subprocess.Popen(["flock", str(lock), "sleep", "2"])  # what virtual-key.sh takes
    try:
        time.sleep(0.3)
        started = time.monotonic()
        with gw.client(MASTER_KEY, timeout=30) as api:
            added = api.post("/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY})
        waited = time.monotonic() - started
    finally:
        holder.wait(10)
    assert added.status_code == 201, added.text
    assert waited >= 1.2, f"answered after {waited:.2f} s while the lock was held"


def test_key_edits_are_audited_without_the_key(gw: Gateway) -> None:
    with gw.client(MASTER_KEY) as api:
        api.post("/admin/v1/providers/fake/keys", json={"api_key": NEW_KEY})
        api.delete("/admin/v1/providers/fake/keys/fake%233")
    wait_until(lambda: len(audit_lines(gw)) >= 2, what="audit lines")
    assert [(a["who"], a["action"], a["target"]) for a in audit_lines(gw)] == [
        ("master", "provider_key.add", "fake#3"), ("master", "provider_key.remove", "fake#3")]
    assert NEW_KEY not in gw.logs()
    assert os.environ.get("FAKE_API_KEY") is None
