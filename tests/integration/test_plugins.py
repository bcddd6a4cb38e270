"""Plugins by entry point, installed into a throwaway virtualenv that sees the project's packages:
examples/plugin-echo (the ``echo`` provider type and the ``collect`` sink) and tests/plugin_pkg (a
store backend, a guard type, and two entry points that cannot be used). The real gateway, started
from that venv, serves a chat through the echo provider (official openai SDK) and the collect sink
receives the record; ``python -m gateway plugins`` lists them all; a config naming a plugin that
failed is one clear error at start-up and on reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import CLIENT_KEY, REPO, Gateway

BROKEN = ("plugin 'broken' (gateway.sinks, from gateway-test-plugins 0.2.0) is installed but not in use: failed to "
          "import: ModuleNotFoundError: No module named 'gateway_test_plugins.missing'")


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv without pip of its own that sees the project's packages (a .pth file, as setup.sh's
    GATEWAY_SETUP_SITE_PACKAGES does) and the repository, with both plugin packages installed."""
    venv = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_gateway_project.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n{REPO}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--disable-pip-version-check",
                    str(REPO / "examples" / "plugin-echo"), str(REPO / "tests" / "plugin_pkg")],
                   check=True, capture_output=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    return python


def echo_config(sink_path: Path) -> str:
    return textwrap.dedent(f"""
    server: {{listen: "127.0.0.1:2906"}}
    llm_providers:
      - {{id: parrot, type: echo, models: [echo-1], prefix: "echo: "}}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}}}
    storage: {{type: memory-copy, note: kept by a plugin}}
    observability:
      sinks:
        - {{type: collect, path: {sink_path}, interval_s: 0.1}}
        - {{type: explodes}}
    """)


def gateway_cli(python: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([python, "-m", "gateway", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60)


def test_plugins_lists_what_is_installed_and_whether_it_loaded(plugin_python: str) -> None:
    listed = gateway_cli(plugin_python, "plugins")
    assert listed.returncode == 1, listed.stderr  # two of them cannot be used
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert rows["echo"].split()[1:5] == ["gateway.providers", "gateway-plugin-echo", "0.1.0", "yes"]
    assert rows["collect"].split()[1:5] == ["gateway.sinks", "gateway-plugin-echo", "0.1.0", "yes"]
    assert rows["memory-copy"].split()[1:5] == ["gateway.stores", "gateway-test-plugins", "0.2.0", "yes"]
    assert rows["no-digits"].split()[1:5] == ["gateway.guardrails", "gateway-test-plugins", "0.2.0", "yes"]
    assert rows["explodes"].split()[1:5] == ["gateway.sinks", "gateway-test-plugins", "0.2.0", "yes"]
    assert rows["broken"].endswith("no: failed to import: ModuleNotFoundError: No module named "
                                   "'gateway_test_plugins.missing'")
    assert rows["wrong"].endswith("no: it names a str, not a gateway.providers.registry.ProviderType")
    assert "Traceback" not in listed.stdout + listed.stderr


def test_the_gateway_answers_through_a_plugin_provider_and_sink(plugin_python: str, tmp_path: Path,
                                                                start_gateway: Callable[..., Gateway]) -> None:
    collected = tmp_path / "collected.jsonl"
    gw = start_gateway(echo_config(collected), python=plugin_python)
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    ask: list[ChatCompletionMessageParam] = [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": "hello there plugin"}]
    whole = client.chat.completions.create(model="echo-1", messages=ask)
    assert whole.choices[0].message.content == "echo: hello there plugin"
    assert whole.usage is not None and (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (5, 4)
    pieces = client.chat.completions.create(model="parrot:echo-1", messages=ask, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(pieces)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there plugin"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(collected.read_text().splitlines() if collected.exists() else []) < 2:
        time.sleep(0.05)
    records = [json.loads(line) for line in collected.read_text().splitlines()]
    assert [(r["provider"], r["model"], r["status"], r["stream"]) for r in records] == [
        ("parrot", "echo-1", 200, False), ("parrot", "echo-1", 200, True)]
    assert records[0]["tokens_out"] == 4 and records[0]["client_id"] == "app"
    assert gw.readiness()["store"]["kind"] == "memory-copy"
    collect, explodes = gw.readiness()["sinks"]
    assert (collect["name"], collect["state"], collect["delivered"]) == ("collect", "ok", 2)
    assert (explodes["name"], explodes["state"], explodes["dropped"]) == ("explodes", "failing", 2)
    assert explodes["last_error"] == "could not be made: RuntimeError: the destination is on fire"
    log = gw.logs()
    assert log.count(BROKEN) == 1 and "Traceback" not in log  # named once at start-up, no traceback


def test_a_config_naming_a_failed_plugin_is_one_clear_error(plugin_python: str, tmp_path: Path,
                                                            start_gateway: Callable[..., Gateway]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(echo_config(tmp_path / "c.jsonl") + "    - {type: broken, name: other}\n")
    checked = gateway_cli(plugin_python, "check-config", str(config), cwd=tmp_path)
    assert checked.returncode == 2
    line = config.read_text().splitlines().index("    - {type: broken, name: other}") + 1
    assert f"{config}:{line}: observability.sinks[2]: {BROKEN}" in checked.stderr
    assert "Traceback" not in checked.stderr
    config.write_text(echo_config(tmp_path / "c.jsonl").replace('prefix: "echo: "', "prefix: [1], colour: red"))
    checked = gateway_cli(plugin_python, "check-config", str(config), cwd=tmp_path)
    assert checked.returncode == 2
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "colour" in text)
    assert f"{config}:{line}: llm_providers[0].prefix: Input should be a valid string" in checked.stderr
    assert f"{config}:{line}: llm_providers[0].colour: unknown field" in checked.stderr
    config.write_text(echo_config(tmp_path / "c.jsonl").replace("note: kept by a plugin", "notes: x"))
    checked = gateway_cli(plugin_python, "check-config", str(config), cwd=tmp_path)
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "notes: x" in text)
    assert f"{config}:{line}: storage.note: Field required" in checked.stderr  # the store plugin's own model
    assert f"{config}:{line}: storage.notes: unknown field" in checked.stderr
    gw = start_gateway(echo_config(tmp_path / "c.jsonl"), python=plugin_python)
    version = gw.readiness()["config"]["version"]
    gw.write_config(echo_config(tmp_path / "c.jsonl").replace("type: collect", "type: broken"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and gw.readiness()["last_reload"]["result"] != "error":
        time.sleep(0.05)
    reload = gw.readiness()["last_reload"]
    assert reload["result"] == "error" and BROKEN in reload["error"]
    assert gw.readiness()["config"]["version"] == version  # the last good config serves on


def test_a_plugin_guard_type_masks_and_blocks_through_the_gateway(plugin_python: str, tmp_path: Path,
                                                                  start_gateway: Callable[..., Gateway]) -> None:
    collected = tmp_path / "collected.jsonl"
    config = textwrap.dedent(f"""
    server: {{listen: "127.0.0.1:2906"}}
    llm_providers:
      - {{id: parrot, type: echo, models: [echo-1, echo-strict], prefix: "echo: "}}
    model_aliases:
      strict: {{targets: [parrot:echo-strict], guardrails: [long-numbers-blocked]}}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}}}
    guardrails:
      default: [long-numbers]
      guards:
        - {{name: long-numbers, type: no-digits, on: input, action: mask, min_run: 6}}
        - {{name: long-numbers-blocked, type: no-digits, on: input, action: block}}
    observability:
      sinks:
        - {{type: collect, path: {collected}, interval_s: 0.1}}
    """)
    gw = start_gateway(config, python=plugin_python)
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    answer = client.chat.completions.create(model="echo-1", messages=[
        {"role": "user", "content": "call 5551234567 about order 4711"}])
    # the plugin's detector found the long run (min_run from its own config field), not the short one
    assert answer.choices[0].message.content == "echo: call <DIGITS_1> about order 4711"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "order 4711"}])
    assert refused.value.code == "guardrail_blocked" and "long-numbers-blocked" in str(refused.value)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(collected.read_text().splitlines() if collected.exists() else []) < 2:
        time.sleep(0.05)
    records = [json.loads(line) for line in collected.read_text().splitlines()]
    assert [(r["status"], r["guardrails"]) for r in records] == [
        (200, "long-numbers:mask:input:1:digits"), (400, "long-numbers-blocked:block:input:1:digits")]


def test_a_plugin_guard_is_checked_by_its_own_model_with_file_and_line(plugin_python: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    base = echo_config(tmp_path / "c.jsonl").replace("        - {type: explodes}\n", "")
    config.write_text(base + "guardrails:\n  guards:\n    - {name: nums, type: no-digits, on: input, action: mask, "
                      "min_run: 0}\n    - {name: other, type: no-such-guard, on: input, action: log}\n")
    checked = gateway_cli(plugin_python, "check-config", str(config), cwd=tmp_path)
    assert checked.returncode == 2, checked.stdout
    lines = config.read_text().splitlines()
    first, second = lines.index("    - {name: nums, type: no-digits, on: input, action: mask, min_run: 0}") + 1, \
        len(lines)
    assert f"{config}:{first}: guardrails.guards[0].min_run: Input should be greater than or equal to 1" \
        in checked.stderr
    assert (f"{config}:{second}: guardrails.guards[1]: type must be one of 'pii', 'secrets', 'regex', "
            "'moderation', 'webhook' or 'no-digits'") in checked.stderr
    assert "Traceback" not in checked.stderr
