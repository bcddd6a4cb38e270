"""Config loading: interpolation, defaults, error paths and lines, cross references, the example file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.snapshot import build_snapshot, key_hash_text

REPO = Path(__file__).resolve().parents[2]


def snapshot(text: str, env: dict[str, str] | None = None):
    return build_snapshot(parse_config(text.encode(), "c.yaml", env or {}), "c.yaml")


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        snapshot(text, env)
    return [issue.render("c.yaml") for issue in info.value.issues]


def test_interpolation_with_defaults_and_the_environment():
    snap = snapshot("""
server: {listen: "127.0.0.1:${PORT:-2906}"}
llm_providers:
  - {id: a, type: openai, api_keys: ["${KEY_A}", "${KEY_B:-}"], base_url: "${URL:-https://x.test}"}
""", {"KEY_A": "sk-aaaaaaaa"})
    assert snap.server.listen == "127.0.0.1:2906"
    provider = snap.providers["a"]
    assert [k.secret for k in provider.keys] == ["sk-aaaaaaaa"]  # empty ones are dropped
    assert provider.api_root == "https://x.test/v1"


def test_provider_keys_default_to_type_env_and_numbered_siblings():
    snap = snapshot("llm_providers: [{id: g, type: groq}]",
                    {"GROQ_API_KEY": "k1", "GROQ_API_KEY_3": "k3", "GROQ_API_KEY_2": "k2", "OTHER": "x"})
    assert [k.secret for k in snap.providers["g"].keys] == ["k1", "k2", "k3"]
    assert snap.providers["g"].api_root == "https://api.groq.com/openai/v1"
    assert [k.label for k in snap.providers["g"].keys] == ["g#1", "g#2", "g#3"]


def test_a_provider_without_keys_is_a_warning_not_an_error():
    snap = snapshot("llm_providers: [{id: o, type: openai}]")
    assert any("no API keys" in w for w in snap.warnings)


def test_errors_name_the_path_and_line():
    found = errors("""
llm_providers:
  - id: a
    type: openai
    api_keys: ["${MISSING}"]
  - id: b
    type: nope
    limits: {req_per_min: 0}
    surprise: 1
api_keys:
  - {key: short}
""")
    assert "c.yaml:5: llm_providers[0].api_keys[0]: environment variable MISSING is not set" in found
    assert any(f.startswith("c.yaml:7: llm_providers[1].type: must be one of") for f in found)
    assert any(f.startswith("c.yaml:8: llm_providers[1].limits.req_per_min") for f in found)
    assert "c.yaml:9: llm_providers[1].surprise: unknown field" in found
    assert any(f.startswith("c.yaml:11: api_keys[0].key") for f in found)


def test_cross_references_are_checked():
    found = errors("""
llm_providers:
  - {id: a, type: openai, api_keys: [k-aaaaaaaa]}
  - {id: a, type: openai, api_keys: [k-bbbbbbbb]}
model_aliases:
  x: nowhere:m
  y: {strategy: round_robin, targets: [a:m, zz:m]}
""")
    assert any("llm_providers[1].id: duplicate provider id 'a'" in f for f in found)
    assert any(f.startswith("c.yaml:6: model_aliases.x: target 'nowhere:m'") for f in found)
    assert any(f.startswith("c.yaml:7: model_aliases.y.targets[1]: target 'zz:m'") for f in found)


def test_yaml_syntax_errors_have_a_line():
    assert errors("a: 1\nb: [1, 2\nc: 3\n")[0].startswith("c.yaml:3: (top level): YAML syntax error")


def test_clients_are_stored_as_digests_and_the_version_tracks_content():
    text = f'api_keys:\n  - {{id: c1, key: plain-client-key}}\n  - {{id: c2, key_hash: "{key_hash_text("other-key-123")}"}}\n'
    snap = snapshot(text)
    assert {c.id for c in snap.clients.values()} == {"c1", "c2"}
    assert "plain-client-key" not in repr(snap)
    assert snapshot(text).version == snap.version
    assert snapshot(text.replace("c1", "c9")).version != snap.version


def test_design_document_example_and_the_shipped_example_load():
    example = (REPO / "config" / "config.example.yaml").read_text()
    snap = snapshot(example, {"OPENAI_API_KEY": "sk-x1234567"})
    assert "fast" in snap.aliases and snap.providers["openai"].keys
    design_like = """
version: "1.0"
server:
  listen: ":2906"
llm_providers:
  - id: openai-prod
    type: openai
    base_url: https://api.openai.com
    api_keys: ["${OPENAI_API_KEY}", "${OPENAI_API_KEY_2}"]
    model: gpt-4o
    pricing: {input_token_cost: 0.002, output_token_cost: 0.01}
    limits: {req_per_min: 200, tokens_per_min: 100000}
model_aliases:
  fast: openai-prod:gpt-4o-mini
  smart: {strategy: fallback, targets: [openai-prod:gpt-4o]}
api_keys:
  - id: client-001
    key: client-key-1
    allowed_providers: ["openai-prod", "gemini"]
    limits: {req_per_min: 100, tokens_per_min: 50000}
  - key: admin-key
    allowed_providers: ["*"]
    admin: true
"""
    snap = snapshot(design_like, {"OPENAI_API_KEY": "a", "OPENAI_API_KEY_2": "b"})
    assert snap.providers["openai-prod"].api_root == "https://api.openai.com/v1"


def test_check_config_cli_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("llm_providers: [{id: a, type: ollama}]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm_providers: [{id: a, type: ollama, weight: -1}]\n")
    run = lambda f: subprocess.run([sys.executable, "-m", "gateway", "check-config", str(f)], cwd=tmp_path,
                                   capture_output=True, text=True, env={"PATH": "/usr/bin", "PYTHONPATH": str(REPO)})
    ok = run(good)
    assert ok.returncode == 0 and "ok:" in ok.stdout
    failed = run(bad)
    assert failed.returncode == 2
    assert "bad.yaml:1: llm_providers[0].weight" in failed.stderr
