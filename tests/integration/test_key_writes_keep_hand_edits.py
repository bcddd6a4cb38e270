"""Keys written while someone edits ``config.yaml`` and ``.env`` by hand: provider keys through the
admin API, clients through ``python -m gateway add-client`` (what ``virtual-key.sh`` runs). No hand
edit is ever reverted, and every change is either made or refused ("changed while editing", 409
from the API) with nothing written. Through the real gateway (two workers, so the writes of both
are in play), the real command, and a hand editor in its own process (tests/hand_editor.py)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from tests.conftest import MASTER_KEY, REPO, Gateway
from tests.fake_upstream import FakeUpstream
from tests.integration.test_admin_api import admin_config, wait_until

KEY_ONE, KEY_TWO = "sk-upstream-key-one-111111", "sk-upstream-key-two-222222"
ENV_KEY = "sk-upstream-env-key-000000"
OPENAI_VARIABLE = re.compile(r"OPENAI_API_KEY(_\d+)?")


def config_with_more_providers(fake: FakeUpstream) -> str:
    """The admin config plus a provider whose models the hand editor extends and one whose keys come
    from ``OPENAI_API_KEY…`` in ``.env`` (so adding to it writes ``.env`` only)."""
    more = (f"  - id: other\n    type: openai-compatible\n    base_url: {fake.base_url}\n"
            f"    api_keys: [\"sk-other-provider-key-4444\"]\n    models: [other-model]\n"
            f"  - id: envy\n    type: openai\n    base_url: {fake.base_url}\n    models: [envy-model]\n")
    text = admin_config(fake, "storage: {type: memory}\n")  # two workers, each its own counters
    return text.replace("model_aliases:", more + "model_aliases:", 1)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    gateway = start_gateway(config_with_more_providers(fake), workers=2)
    with gateway.env_path.open("a") as handle:
        handle.write(f"OPENAI_API_KEY={ENV_KEY}\n")
    wait_until(lambda: len(pool(gateway, "envy")) == 1, what="the envy provider's key")
    return gateway


def pool(gw: Gateway, provider: str) -> list[str]:
    with gw.client(MASTER_KEY) as api:
        listed = api.get("/admin/v1/providers").json()["providers"]
    return [k["label"] for p in listed if p["id"] == provider for k in p["keys"]]


def hand_editor(gw: Gateway, seconds: float, pause_ms: float, kinds: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.hand_editor", str(gw.config_path), str(gw.env_path), str(seconds),
            str(pause_ms), kinds]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)


class KeyWriter:
    """Adds keys to one provider through the admin API and removes every other one it added,
    keeping the set of keys the provider must end with."""

    def __init__(self, gw: Gateway, provider: str, expected: set[str]) -> None:
        self.gw, self.provider, self.expected = gw, provider, set(expected)
        self.statuses: list[int] = []

    def run(self, until: Callable[[], bool]) -> None:
        with self.gw.client(MASTER_KEY) as api:
            n = 0
            while not until():
                n += 1
                secret = f"sk-{self.provider}-added-{n:04d}-xxxxxxxx"
                added = api.post(f"/admin/v1/providers/{self.provider}/keys", json={"api_key": secret})
                self.statuses.append(added.status_code)
                if added.status_code != 201:
                    continue
                self.expected.add(secret)
                if n % 2:
                    removed = api.delete(f"/admin/v1/providers/{self.provider}/keys/"
                                         + added.json()["label"].replace("#", "%23"))
                    self.statuses.append(removed.status_code)
                    if removed.status_code == 200:
                        self.expected.discard(secret)


def final_keys(gw: Gateway) -> dict[str, set[str]]:
    env = {k: v or "" for k, v in dotenv_values(stream=io.StringIO(gw.env_path.read_text())).items()}
    config = yaml.safe_load(gw.config_path.read_text())
    listed = next(p for p in config["llm_providers"] if p["id"] == "fake")["api_keys"]
    named = [re.fullmatch(r"\$\{(\w+)\}", item) for item in listed]
    return {"fake": {env.get(m.group(1), "") if m else item for item, m in zip(listed, named, strict=True)},
            "envy": {v for k, v in env.items() if OPENAI_VARIABLE.fullmatch(k)}}


def lost_hand_edits(gw: Gateway, made: dict[str, list[int]]) -> dict[str, list[int]]:
    config, env = gw.config_path.read_text(), gw.env_path.read_text()
    models = next(p for p in yaml.safe_load(config)["llm_providers"] if p["id"] == "other")["models"]
    present = {"append-config": lambda n: f"# hand edit {n}\n" in config,
               "append-env": lambda n: f"# hand edit {n}\n" in env,
               "model": lambda n: f"hand-{n}" in models,
               "rename-env": lambda n: f"HAND_EDIT_{n}=yes\n" in env}
    return {kind: [n for n in numbers if not present[kind](n)] for kind, numbers in made.items()}


def test_hand_edits_made_while_keys_are_written_are_never_reverted(gw: Gateway) -> None:
    editor = hand_editor(gw, seconds=6, pause_ms=150, kinds="append-config,model,append-env,rename-env")
    writers = [KeyWriter(gw, "fake", {KEY_ONE, KEY_TWO}), KeyWriter(gw, "envy", {ENV_KEY})]
    threads = [threading.Thread(target=w.run, args=(lambda: editor.poll() is not None,)) for w in writers]
    for thread in threads:
        thread.start()
    out, _ = editor.communicate(timeout=60)
    for thread in threads:
        thread.join(60)
    made = json.loads(out)
    lost = lost_hand_edits(gw, made)
    counts = {kind: f"{len(lost[kind])} of {len(made[kind])}" for kind in made}
    assert not any(lost.values()), f"hand edits lost: {counts}: {lost}"
    statuses = [s for w in writers for s in w.statuses]
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses.count(201) >= 5, statuses  # the API kept working
    assert final_keys(gw) == {w.provider: w.expected for w in writers}
    wait_until(lambda: all(len(pool(gw, w.provider)) == len(w.expected) for w in writers), what="the live pools")
    leftovers = [p.name for d in (gw.workdir, gw.config_path.parent) for p in d.iterdir() if p.name.endswith(".tmp")
                 or p.name.startswith((".config.yaml.", ".env."))]
    assert leftovers == []


def test_a_file_that_keeps_changing_gets_409_and_nothing_written(gw: Gateway) -> None:
    editor = hand_editor(gw, seconds=4, pause_ms=1, kinds="append-config")
    time.sleep(0.3)
    with gw.client(MASTER_KEY) as api:
        refused = api.post("/admin/v1/providers/fake/keys", json={"api_key": "sk-never-written-55555555"})
    still_editing = editor.poll() is None
    out, _ = editor.communicate(timeout=30)
    assert still_editing, "the hand editor stopped before the answer: the test proved nothing"
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert message.startswith("Changed while editing: config.yaml was edited meanwhile") and "retry" in message
    assert "sk-never-written" not in gw.env_path.read_text() + gw.config_path.read_text()
    assert "FAKE_API_KEY" not in gw.env_path.read_text() + gw.config_path.read_text()
    assert lost_hand_edits(gw, json.loads(out)) == {"append-config": []}
    with gw.client(MASTER_KEY) as api:  # once the file is left alone, the same request goes through
        again = api.post("/admin/v1/providers/fake/keys", json={"api_key": "sk-never-written-55555555"})
    assert again.status_code == 201, again.text


def test_clients_added_while_the_config_is_edited_by_hand_never_revert_it(tmp_path: Path, fake: FakeUpstream) -> None:
    files = Gateway(tmp_path, config_with_more_providers(fake))  # the files only: add-client needs no gateway
    with files.env_path.open("a") as handle:
        handle.write(f"OPENAI_API_KEY={ENV_KEY}\n")
    editor = hand_editor(files, seconds=8, pause_ms=40, kinds="append-config,model")
    outcomes: dict[str, subprocess.CompletedProcess[str]] = {}
    while editor.poll() is None:
        client_id = f"hand-race-{len(outcomes) + 1}"
        outcomes[client_id] = subprocess.run([sys.executable, "-m", "gateway", "add-client", "--id", client_id],
                                             cwd=files.workdir, env=files.env, capture_output=True, text=True,
                                             timeout=120)
    out, _ = editor.communicate(timeout=30)
    made = json.loads(out)
    lost = lost_hand_edits(files, made)
    counts = {kind: f"{len(lost[kind])} of {len(made[kind])}" for kind in made}
    assert not any(lost.values()), f"hand edits lost: {counts}: {lost}"
    clients = {c["id"]: c for c in yaml.safe_load(files.config_path.read_text())["api_keys"]}
    for client_id, run in outcomes.items():
        if run.returncode == 0:
            key_hash = "sha256:" + hashlib.sha256(run.stdout.strip().encode()).hexdigest()
            assert clients[client_id]["key_hash"] == key_hash, run.stdout
        else:
            assert "Changed while editing" in run.stderr and client_id not in clients, run.stderr
    assert sum(run.returncode == 0 for run in outcomes.values()) >= 3, {i: r.stderr for i, r in outcomes.items()}
