"""The key-rotation quick start (``/work/shared/reference/key-rotation-quickstart.md``) as pasted: its
``.env`` files verbatim (their ``AIza...keyN`` placeholders are the fake keys), one Gemini provider per
feature (chat, image, fix) taking its keys with ``api_keys_env``, each feature rotating over its own keys
only, a 429 moving to the next key, and a new ``.env`` applied live."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway
from tests.fake_gemini import FakeGemini, GeminiBehaviour

# "Minimum configuration (works with existing keys)", verbatim
MINIMUM_ENV = """\
GOOGLE_AI_STUDIO_KEY_CHAT=AIza...your_existing_chat_key
GOOGLE_AI_STUDIO_KEY_IMAGE=AIza...your_existing_image_key
GOOGLE_AI_STUDIO_KEY_FIX=AIza...your_existing_fix_key
"""

# "Recommended configuration (with rotation)", verbatim
RECOMMENDED_ENV = """\
# Chat keys (3 keys = 6 RPM total)
GOOGLE_AI_STUDIO_KEY_CHAT=AIza...key1
GOOGLE_AI_STUDIO_KEY_CHAT_2=AIza...key2
GOOGLE_AI_STUDIO_KEY_CHAT_3=AIza...key3

# Image keys (3 keys = 45 RPM total)
GOOGLE_AI_STUDIO_KEY_IMAGE=AIza...key4
GOOGLE_AI_STUDIO_KEY_IMAGE_2=AIza...key5
GOOGLE_AI_STUDIO_KEY_IMAGE_3=AIza...key6

# Fix keys (2 keys = 4 RPM total)
GOOGLE_AI_STUDIO_KEY_FIX=AIza...key7
GOOGLE_AI_STUDIO_KEY_FIX_2=AIza...key8
"""

FEATURE_KEYS = {
    "gemini-pro-chat": {"AIza...key1", "AIza...key2", "AIza...key3"},
    "gemini-image": {"AIza...key4", "AIza...key5", "AIza...key6"},
    "gemini-fix": {"AIza...key7", "AIza...key8"},
}


def quickstart_config(fake: FakeGemini) -> str:
    """One provider per feature, each with its own key pool; the model names the quick start calls."""
    root = f"{fake.base_url}/v1beta"
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 5
    routing:
      cooldown_s: 60          # the quick start's cooldown_time
    llm_providers:
      - id: gemini-chat
        type: gemini
        base_url: {root}
        api_keys_env: GOOGLE_AI_STUDIO_KEY_CHAT
        model: gemini-2.5-pro
      - id: gemini-image
        type: gemini
        base_url: {root}
        api_keys_env: GOOGLE_AI_STUDIO_KEY_IMAGE
        model: gemini-2.5-flash-image
      - id: gemini-fix
        type: gemini
        base_url: {root}
        api_keys_env: GOOGLE_AI_STUDIO_KEY_FIX
        model: gemini-2.5-flash
    model_aliases:
      gemini-pro-chat: gemini-chat:gemini-2.5-pro
      gemini-image: gemini-image:gemini-2.5-flash-image
      gemini-fix: gemini-fix:gemini-2.5-flash
    api_keys:
      - id: supabase-functions
        key: {CLIENT_KEY}
    """)


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    server = FakeGemini()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gemini(gemini_server: FakeGemini) -> Iterator[FakeGemini]:
    gemini_server.reset()
    yield gemini_server
    gemini_server.reset()


def start_with_env(start_gateway: Callable[..., Gateway], fake: FakeGemini, dotenv: str) -> Gateway:
    gateway = start_gateway(quickstart_config(fake))
    old = gateway.readiness()["config"]["version"]
    gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n{dotenv}")
    gateway.wait_for_version_change(old)
    return gateway


def chat(gateway: Gateway, model: str) -> httpx.Response:
    """The quick start's "Test chat endpoint" curl (with the client key the gateway asks for)."""
    return httpx.post(gateway.base_url + "/chat/completions", timeout=30,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hello!"}]})


def keys_used(fake: FakeGemini, start: int = 0) -> list[str | None]:
    return [r.api_key for r in fake.requests[start:]]


def test_each_feature_rotates_over_its_own_keys_only(start_gateway, gemini):
    gateway = start_with_env(start_gateway, gemini, RECOMMENDED_ENV)
    assert httpx.get(gateway.base_url + "/health", timeout=5).json() == {"status": "healthy"}
    for model, keys in FEATURE_KEYS.items():
        start = len(gemini.requests)
        for _ in range(2 * len(keys)):
            response = chat(gateway, model)
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"]
        used = keys_used(gemini, start)
        assert set(used) == keys  # every key of the feature, no key of another feature
        assert all(used.count(k) == 2 for k in keys)  # spread evenly
    assert gateway.readiness()["config"]["warnings"] == []  # every feature found its keys


def test_a_429_on_one_key_is_retried_on_the_next_unseen(start_gateway, gemini):
    gateway = start_with_env(start_gateway, gemini, RECOMMENDED_ENV)
    gemini.set_default(GeminiBehaviour(status=429, retry_delay="30s"), key="AIza...key1")
    for _ in range(3):
        response = chat(gateway, "gemini-pro-chat")
        assert response.status_code == 200, response.text  # "Your app never sees the 429 error!"
    assert gemini.count("AIza...key1") == 1  # tried once, then left to cool down
    assert set(keys_used(gemini)) == FEATURE_KEYS["gemini-pro-chat"]


def test_the_minimum_env_works_and_the_recommended_one_applies_live(start_gateway, gemini):
    gateway = start_with_env(start_gateway, gemini, MINIMUM_ENV)
    existing = {"gemini-pro-chat": "AIza...your_existing_chat_key", "gemini-image": "AIza...your_existing_image_key",
                "gemini-fix": "AIza...your_existing_fix_key"}
    for model, key in existing.items():
        start = len(gemini.requests)
        for _ in range(2):
            assert chat(gateway, model).status_code == 200
        assert keys_used(gemini, start) == [key, key]

    old = gateway.readiness()["config"]["version"]
    gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n{RECOMMENDED_ENV}")  # no restart
    gateway.wait_for_version_change(old)
    start = len(gemini.requests)
    for _ in range(4):
        assert chat(gateway, "gemini-fix").status_code == 200
    assert set(keys_used(gemini, start)) == FEATURE_KEYS["gemini-fix"]

    old = gateway.readiness()["config"]["version"]
    gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n{RECOMMENDED_ENV}"
                                "GOOGLE_AI_STUDIO_KEY_FIX_3=AIza...key9\n")  # a third fix key joins
    gateway.wait_for_version_change(old)
    start = len(gemini.requests)
    for _ in range(6):
        assert chat(gateway, "gemini-fix").status_code == 200
    assert set(keys_used(gemini, start)) == FEATURE_KEYS["gemini-fix"] | {"AIza...key9"}
    logs = gateway.logs()
    assert "AIza...key" not in logs and "your_existing" not in logs


# ---------------------------------------------------------------- the api_keys_env field, checked without serving

def snapshot_issues(provider_yaml: str, environ: dict[str, str]) -> list[str]:
    from gateway.config.loader import ConfigError, parse_config
    from gateway.config.snapshot import build_snapshot

    source = f"llm_providers:\n  - {provider_yaml}\n".encode()
    try:
        snap = build_snapshot(parse_config(source, "c.yaml", environ), "c.yaml")
    except ConfigError as exc:
        return [issue.render("c.yaml") for issue in exc.issues]
    return [f"keys: {[k.label for k in snap.providers['g'].keys]}", *snap.warnings]


def test_api_keys_env_takes_the_variable_and_its_numbered_siblings_on_any_provider_type():
    env = {"TEAM_KEY": "k1", "TEAM_KEY_3": "k3", "TEAM_KEY_2": "k2", "TEAM_KEY_EXTRA": "no", "GEMINI_API_KEY": "no"}
    assert snapshot_issues("{id: g, type: gemini, api_keys_env: TEAM_KEY}", env) == ["keys: ['g#1', 'g#2', 'g#3']"]
    assert snapshot_issues("{id: g, type: openai, api_keys_env: [TEAM_KEY, OTHER]}", {**env, "OTHER": "k4"}) == [
        "keys: ['g#1', 'g#2', 'g#3', 'g#4']"]


def test_api_keys_env_mistakes_are_config_errors_with_their_line():
    assert snapshot_issues("{id: g, type: gemini, api_keys_env: TEAM_KEY, api_keys: [a]}", {}) == [
        "c.yaml:2: llm_providers[0]: Value error, give either 'api_keys' or 'api_keys_env', not both"]
    assert snapshot_issues("{id: g, type: gemini, api_keys_env: 'TEAM-KEY'}", {})[0].startswith(
        "c.yaml:2: llm_providers[0].api_keys_env: ")
    assert snapshot_issues("{id: g, type: gemini, api_keys_env: GATEWAY_MASTER_KEY}", {"GATEWAY_MASTER_KEY": "m"}) == [
        "c.yaml:2: llm_providers[0].api_keys_env: GATEWAY_MASTER_KEY is the gateway's own key; it is never sent "
        "to a provider"]


def test_a_pool_with_no_keys_yet_is_a_warning_naming_the_variables():
    assert snapshot_issues("{id: g, type: gemini, api_keys_env: GOOGLE_AI_STUDIO_KEY_CHAT}", {}) == [
        "keys: []", "llm_providers[0] (g): no API keys found in the environment or .env (GOOGLE_AI_STUDIO_KEY_CHAT, "
        "GOOGLE_AI_STUDIO_KEY_CHAT_2, …); requests to it will fail until keys are added"]
