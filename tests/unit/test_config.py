"""Config loading: interpolation, defaults, error paths and lines, cross references, the example file."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.snapshot import build_snapshot
from gateway.core.targets import key_hash_text

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
    other = key_hash_text("other-key-123")
    text = f'api_keys:\n  - {{id: c1, key: plain-client-key}}\n  - {{id: c2, key_hash: "{other}"}}\n'
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
    ok = run_check_config(tmp_path, str(good))
    assert ok.returncode == 0 and "ok:" in ok.stdout
    failed = run_check_config(tmp_path, str(bad))
    assert failed.returncode == 2
    assert "bad.yaml:1: llm_providers[0].weight" in failed.stderr


def test_duplicate_keys_are_errors_at_any_depth_naming_both_lines():
    found = errors("""
llm_providers:
  - id: a
    type: openai
    api_keys: [k-aaaaaaaa]
    limits: {req_per_min: 5, req_per_min: 6}
    type: groq
api_keys:
  - {id: c1, key: plain-client-key}
api_keys: []
""")
    assert found == [
        "c.yaml:6: llm_providers[0].limits.req_per_min: duplicate key 'req_per_min' (first at line 6)",
        "c.yaml:7: llm_providers[0].type: duplicate key 'type' (first at line 4)",
        "c.yaml:10: api_keys: duplicate key 'api_keys' (first at line 8)",
    ]


def test_merge_keys_may_override_without_being_duplicates():
    snap = snapshot("""
llm_providers:
  - {id: a, type: ollama, limits: &std {req_per_min: 5, tokens_per_min: 100}}
  - id: b
    type: ollama
    limits:
      <<: *std
      req_per_min: 7
""")
    assert snap.providers["b"].limits.req_per_min == 7 and snap.providers["b"].limits.tokens_per_min == 100


def alias_bomb(levels: int) -> str:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{n}: &lol{n} [" + ", ".join([f"*lol{n - 1}"] * 10) + "]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_milliseconds_with_bounded_memory():
    tracemalloc.start()
    started = time.perf_counter()
    try:
        found = errors(alias_bomb(9))  # 10^10 leaves once expanded
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == ["c.yaml: (top level): YAML aliases expand this document by more than 100,000 nodes "
                     "(an alias bomb?); refused"]
    assert took < 1.0, took
    assert peak < 5_000_000, peak


def test_modest_alias_use_is_fine():
    shared = "".join(f"  - {{id: c{n}, key: client-key-{n:04d}, limits: *std}}\n" for n in range(2000))
    snap = snapshot("api_keys:\n  - {id: first, key: client-key-first, limits: &std {req_per_min: 10}}\n" + shared)
    assert len(snap.clients) == 2001
    assert {c.limits.req_per_min for c in snap.clients.values()} == {10}


def test_a_recursive_alias_is_refused():
    assert errors("llm_providers: &a [*a]\n") == [
        "c.yaml:1: llm_providers[0]: an alias refers to a node that contains it (a recursive document); refused"]


def test_an_oversized_file_is_refused_before_parsing():
    found = errors("# padding\n" * (2 * 1024 * 1024))
    assert found == ["c.yaml: (top level): the file is larger than 16 MiB; refused"]


@pytest.mark.parametrize("key, reason", [
    ('" sk-spaced-client-key"', "leading or trailing spaces"),
    ('"sk-spaced-client-key "', "leading or trailing spaces"),
    ('"sk-clé-de-client-0123"', "non-ASCII"),
    ('"sk-tab\\tinside-key-0123"', "control characters"),
])
def test_a_client_key_no_client_could_send_is_a_config_error(key, reason):
    found = errors(f"api_keys:\n  - id: c1\n    key: {key}\n")
    assert len(found) == 1 and found[0].startswith("c.yaml:3: api_keys[0].key: ") and reason in found[0]
    assert "spaced" not in found[0] and "clé" not in found[0] and "tab" not in found[0]  # never the key


def test_a_client_key_from_the_environment_is_checked_after_interpolation():
    found = errors('api_keys:\n  - {id: c1, key: "${CLIENT_KEY}"}\n', {"CLIENT_KEY": "sk-from-env-0123 "})
    assert len(found) == 1 and found[0].startswith("c.yaml:2: api_keys[0].key: ")
    assert "leading or trailing spaces" in found[0] and "sk-from-env" not in found[0]
    assert snapshot('api_keys:\n  - {id: c1, key: "${CLIENT_KEY}"}\n', {"CLIENT_KEY": "sk-from-env-0123"}).clients


def run_check_config(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "check-config", *args], cwd=tmp_path,
                          capture_output=True, text=True, env={"PATH": "/usr/bin", "PYTHONPATH": str(REPO)})


def test_check_config_refuses_a_master_key_with_surrounding_spaces_in_dot_env(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("llm_providers: [{id: a, type: ollama}]\n")
    env = tmp_path / ".env"
    env.write_text('GATEWAY_MASTER_KEY=" sk-master-with-a-space"\n')
    failed = run_check_config(tmp_path, str(config), "--env-file", str(env))
    assert failed.returncode == 2
    assert "GATEWAY_MASTER_KEY (environment or .env): Value error" not in failed.stderr
    assert "GATEWAY_MASTER_KEY (environment or .env): the key has leading or trailing spaces" in failed.stderr
    assert "sk-master-with-a-space" not in failed.stderr + failed.stdout
    env.write_text("GATEWAY_MASTER_KEY=sk-master-without-spaces\n")
    assert run_check_config(tmp_path, str(config), "--env-file", str(env)).returncode == 0


def test_check_config_reports_a_duplicate_top_level_key(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("llm_providers: [{id: a, type: ollama}]\napi_keys:\n  - {id: c1, key: plain-client-key}\n"
                      "api_keys: []\n")
    failed = run_check_config(tmp_path, str(config))
    assert failed.returncode == 2
    assert f"{config}:4: api_keys: duplicate key 'api_keys' (first at line 2)" in failed.stderr


def test_a_wrong_provider_type_is_one_line_listing_the_types_and_the_rest_is_still_checked():
    found = errors("""
llm_providers:
  - id: a
    type: opneai
    limits: {req_per_min: 0}
  - id: b
    limits: {tokens_per_min: 0}
""")
    types = ("'openai', 'azure', 'anthropic', 'gemini', 'groq', 'mistral', 'deepseek', 'together', 'perplexity', "
             "'xai', 'openrouter', 'ollama', 'lmstudio' or 'openai-compatible'")
    assert sorted(found) == sorted([
        f"c.yaml:4: llm_providers[0].type: must be one of {types}",
        "c.yaml:5: llm_providers[0].limits.req_per_min: Input should be greater than or equal to 1",
        "c.yaml:6: llm_providers[1].type: Field required",
        "c.yaml:7: llm_providers[1].limits.tokens_per_min: Input should be greater than or equal to 1",
    ])


def test_each_provider_type_has_its_own_fields():
    found = errors("""
llm_providers:
  - {id: a, type: openai, api_version: "2024-10-21"}
  - {id: b, type: groq, anthropic_version: "2023-06-01"}
  - {id: c, type: azure, base_url: "https://r.openai.azure.com", api_version: "2024-10-21", pricing: {x: 1}}
""")
    assert found == ["c.yaml:3: llm_providers[0].api_version: unknown field",
                     "c.yaml:4: llm_providers[1].anthropic_version: unknown field",
                     "c.yaml:5: llm_providers[2].pricing.x: unknown field"]


def test_azure_needs_a_base_url_and_an_api_version():
    found = errors("""
llm_providers:
  - {id: a, type: azure, api_version: "2024-10-21"}
  - {id: b, type: azure, base_url: "https://r.openai.azure.com"}
""")
    assert found == ["c.yaml:3: llm_providers[0].base_url: type 'azure' needs a base_url",
                     "c.yaml:4: llm_providers[1].api_version: type 'azure' needs an api_version, e.g. \"2024-10-21\""]
    snap = snapshot('llm_providers: [{id: a, type: azure, base_url: "https://r.openai.azure.com/", '
                    'api_version: "2024-10-21", api_keys: [k-aaaaaaaa]}]')
    spec = snap.providers["a"]
    assert (spec.protocol, spec.api_root, spec.api_version) == ("azure", "https://r.openai.azure.com", "2024-10-21")
