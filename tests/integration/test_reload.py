"""Live reload of config.yaml and .env while the gateway serves."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour


def two_provider_config(fake, fake2, alias_target: str, extra: str = "", listen: str = "127.0.0.1:2906") -> str:
    return f"""
    server: {{listen: "{listen}", log_requests: false}}
    llm_providers:
      - {{id: one, type: openai-compatible, base_url: "{fake.base_url}", api_keys: [key-one-aaaaaaaa], models: [m1]}}
      - {{id: two, type: openai-compatible, base_url: "{fake2.base_url}", api_keys: [key-two-bbbbbbbb], models: [m2]}}
    model_aliases:
      fast: {alias_target}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}}}
    {extra}
    """


def chat(client: httpx.Client, model: str = "fast") -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]})


def metric_value(gateway, name: str, labels: str) -> float:
    text = gateway.metrics()
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def texts(fake, fake2):
    fake.set_default(Behaviour(text="from one"))
    fake2.set_default(Behaviour(text="from two"))


def test_an_edit_applies_without_restart(start_gateway, fake, fake2, texts):
    gw = start_gateway(two_provider_config(fake, fake2, "one:m1"))
    pid = gw.proc.pid
    version = gw.readiness()["config"]["version"]
    with gw.client() as client:
        assert chat(client).json()["choices"][0]["message"]["content"] == "from one"
        saved = time.monotonic()
        gw.write_config(two_provider_config(fake, fake2, "two:m2"))
        gw.wait_for_version_change(version, timeout=5)
        applied = time.monotonic() - saved
        assert chat(client).json()["choices"][0]["message"]["content"] == "from two"
    assert applied < 2.0  # the issue asks for 1 s; the margin is for a loaded CI machine
    assert gw.proc.pid == pid and gw.proc.poll() is None
    assert gw.readiness()["last_reload"]["result"] == "ok"
    assert metric_value(gw, "gateway_config_reloads_total", 'result="ok"') >= 1


@pytest.mark.parametrize("bad_edit, where", [
    ("llm_providers: [\n  - id: broken\n", "YAML syntax error"),
    ("{good}\n    routing: {{max_attempts: 0}}\n", "routing.max_attempts"),
    ("{good_unknown_alias}", "model_aliases.fast"),
    ("{good_missing_env}", "environment variable GATEWAY_TEST_MISSING_VAR is not set"),
])
def test_a_bad_edit_is_rejected_and_the_last_good_config_keeps_serving(start_gateway, fake, fake2, texts,
                                                                       bad_edit, where):
    good = two_provider_config(fake, fake2, "one:m1")
    gw = start_gateway(good)
    version = gw.readiness()["config"]["version"]
    text = bad_edit.format(
        good=good,
        good_unknown_alias=two_provider_config(fake, fake2, "nowhere:m9"),
        good_missing_env=two_provider_config(fake, fake2, "one:m1").replace(
            "key-one-aaaaaaaa", "\"${GATEWAY_TEST_MISSING_VAR}\""),
    )
    for _ in range(2):  # the same bad save twice: logged once
        gw.write_config(text)
        deadline = time.monotonic() + 5
        while gw.readiness()["last_reload"]["result"] != "error" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    ready = gw.readiness()
    assert ready["last_reload"]["result"] == "error"
    assert where in ready["last_reload"]["error"]
    assert re.search(r"config\.yaml:\d+: ", ready["last_reload"]["error"])  # file and line
    assert ready["config"]["version"] == version
    with gw.client() as client:
        assert chat(client).json()["choices"][0]["message"]["content"] == "from one"
    assert metric_value(gw, "gateway_config_reloads_total", 'result="error"') >= 1
    assert gw.logs().count("config reload rejected") == 1
    gw.write_config(two_provider_config(fake, fake2, "two:m2"))  # fixing it applies again
    gw.wait_for_version_change(version)
    assert gw.readiness()["last_reload"]["result"] == "ok"


def test_no_request_fails_while_the_file_is_rewritten_under_load(start_gateway, fake, fake2, texts):
    configs = [two_provider_config(fake, fake2, "one:m1"), two_provider_config(fake, fake2, "two:m2")]
    gw = start_gateway(configs[0])
    stop = threading.Event()
    failures: list[str] = []
    answers: set[str] = set()

    def writer() -> None:
        for i in range(8):
            text = configs[(i + 1) % 2]
            if i % 2:
                gw.write_config(text)  # atomic rename
            else:
                with open(gw.config_path, "w") as handle:  # in place: truncate, then write in two parts
                    body = textwrap.dedent(text)
                    handle.write(body[: len(body) // 2])
                    handle.flush()
                    time.sleep(0.01)
                    handle.write(body[len(body) // 2:])
            time.sleep(0.6)  # longer than the settle time (0.3 s of quiet), so every version applies
        stop.set()

    def load() -> int:
        done = 0
        with gw.client() as client:
            while not stop.is_set():
                response = chat(client)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    answers.add(response.json()["choices"][0]["message"]["content"])
                done += 1
        return done

    with ThreadPoolExecutor(9) as pool:
        counts = [pool.submit(load) for _ in range(8)]
        pool.submit(writer).result(timeout=60)
        total = sum(c.result(timeout=60) for c in counts)
    assert total >= 200, total
    assert failures == []
    assert answers == {"from one", "from two"}


def test_requests_in_flight_finish_on_the_config_they_started_with(start_gateway, fake, fake2, texts):
    gw = start_gateway(two_provider_config(fake, fake2, "one:m1"))
    version = gw.readiness()["config"]["version"]
    fake.set_default(Behaviour(text="a b c d e", chunks=5, chunk_delay_s=0.3))
    with gw.client() as client:
        with client.stream("POST", "/v1/chat/completions",
                           json={"model": "fast", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            # provider "one" disappears from the config while its stream is running
            provider_one = (f'- {{id: one, type: openai-compatible, base_url: "{fake.base_url}", '
                            'api_keys: [key-one-aaaaaaaa], models: [m1]}\n')
            gw.write_config(two_provider_config(fake, fake2, "two:m2").replace(provider_one, ""))
            gw.wait_for_version_change(version)
            rest = [line for line in lines if line.startswith("data:")]
        assert first and rest[-1] == "data: [DONE]"
        assert chat(client, "m1").json()["error"]["code"] == "model_not_found"
        assert chat(client).json()["choices"][0]["message"]["content"] == "from two"


def test_dot_env_provider_key_rotation(tmp_path_factory, fake, fake2, texts):
    gw = Gateway(tmp_path_factory.mktemp("gw"), two_provider_config(fake, fake2, "one:m1").replace(
        "key-one-aaaaaaaa", "\"${ONE_KEY}\""))
    gw.env_path.write_text(gw.env_path.read_text() + "ONE_KEY=sk-first-key-11111111\n")
    gw.start()
    try:
        version = gw.readiness()["config"]["version"]
        with gw.client() as client:
            chat(client)
            assert fake.requests[-1].api_key == "sk-first-key-11111111"
            gw.env_path.write_text(gw.env_path.read_text().replace("sk-first-key-11111111", "sk-second-key-2222222"))
            gw.wait_for_version_change(version)
            chat(client)
            assert fake.requests[-1].api_key == "sk-second-key-2222222"
    finally:
        gw.stop()
    assert "sk-second-key-2222222" not in gw.logs() and "sk-first-key-11111111" not in gw.logs()


def test_settings_that_need_a_restart_are_reported(start_gateway, fake, fake2, texts):
    gw = start_gateway(two_provider_config(fake, fake2, "one:m1"))
    version = gw.readiness()["config"]["version"]
    gw.write_config(two_provider_config(fake, fake2, "two:m2", listen="127.0.0.1:2999"))
    gw.wait_for_version_change(version)
    assert gw.readiness()["last_reload"]["restart_needed"] == ["server.listen"]
    assert "change only with a restart" in gw.logs()
    with gw.client() as client:  # still on the old port, with the rest of the edit applied
        assert chat(client).json()["choices"][0]["message"]["content"] == "from two"


def test_every_worker_reloads(start_gateway, fake, fake2, texts):
    # several workers need a shared store for limits (serve refuses a SQLite one); this test is about reloads only
    gw = start_gateway(two_provider_config(fake, fake2, "one:m1", extra="storage: {type: memory}"), workers=2)
    version = gw.readiness()["config"]["version"]
    gw.write_config(two_provider_config(fake, fake2, "two:m2"))
    new_version = gw.wait_for_version_change(version)
    # new connections spread over both workers: soon every one of them answers from the new config
    deadline, streak = time.monotonic() + 10, 0
    while streak < 30 and time.monotonic() < deadline:
        with gw.client() as client:
            readiness = client.get("/health/readiness", headers=ADMIN_HEADERS).json()
            fresh = (chat(client).json()["choices"][0]["message"]["content"] == "from two"
                     and readiness["config"]["version"] == new_version)
        streak = streak + 1 if fresh else 0
    assert streak >= 30, gw.logs()[-2000:]


def test_add_client_key_works_at_once(start_gateway, fake, fake2, texts):
    gw = start_gateway(two_provider_config(fake, fake2, "one:m1"))
    result = subprocess.run([sys.executable, "-m", "gateway", "add-client", "--id", "new-app", "--providers", "two",
                             "--rpm", "100"], cwd=gw.workdir, env=gw.env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("sk-") and len(key) > 30
    text = gw.config_path.read_text()
    assert key not in text and "key_hash: \"sha256:" in text and "id: new-app" in text
    deadline = time.monotonic() + 5
    with gw.client(key) as client:
        while time.monotonic() < deadline:
            response = chat(client, "m2")
            if response.status_code == 200:
                break
            time.sleep(0.05)
        assert response.status_code == 200
        assert chat(client, "m1").status_code == 403  # only provider "two" was allowed
    assert key not in gw.logs()


def test_provider_keys_added_to_dot_env_apply_live(tmp_path_factory, fake, fake2, texts):
    """A provider without api_keys takes {TYPE}_API_KEY, _2, … from .env; adding one there applies live."""
    gw = Gateway(tmp_path_factory.mktemp("gw"), f"""
    llm_providers:
      - {{id: pool, type: openai-compatible, base_url: "{fake.base_url}", models: [m1]}}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}}}
    """)
    gw.start()
    try:
        version = gw.readiness()["config"]["version"]
        with gw.client() as client:
            assert chat(client, "m1").status_code == 200  # openai-compatible needs no key
            assert fake.requests[-1].api_key is None
            with open(gw.env_path, "a") as handle:  # an in-place append, as an operator's echo >> .env
                handle.write("OPENAI_COMPATIBLE_API_KEY=sk-pool-one-11111111\nOPENAI_COMPATIBLE_API_KEY_2=sk-pool-two-22222222\n")
            gw.wait_for_version_change(version)
            used: set[str | None] = set()
            for _ in range(4):
                assert chat(client, "m1").status_code == 200
                used.add(fake.requests[-1].api_key)
        assert used == {"sk-pool-one-11111111", "sk-pool-two-22222222"}
    finally:
        gw.stop()
