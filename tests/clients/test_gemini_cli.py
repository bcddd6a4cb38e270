"""Gemini CLI (the pinned ``@google/gemini-cli``) through the gateway, headless (``gemini -p``), against
a fake upstream of each provider type: Gemini (its requests passed through), OpenAI-compatible and
Anthropic (translated both ways).

Each run is one agent turn (``-m`` names the model, so the CLI sends no router request): the
upstream asks for ``read_file`` on a file the test wrote, the CLI reads it and sends the result
back, the upstream answers. Pass: the CLI exits 0 and prints the scripted answer (it exits 0 with
an empty stdout when an answer lacks a finish reason, so stdout is what counts), the upstream got
the file's content as the function's response, and the ledger holds both requests with the
upstream's exact tokens, their cost and no error.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.conftest import ANSWER, PRICING, agent_dirs, check_ledger, finished
from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_anthropic import AnthropicBehaviour, FakeAnthropic, input_tokens_of
from tests.fake_gemini import FakeGemini, GeminiBehaviour
from tests.fake_gemini import prompt_tokens_of as gemini_prompt_tokens
from tests.fake_upstream import Behaviour, FakeUpstream, prompt_tokens_of

PROMPT = "Read the file secret.txt in the current directory and tell me the secret word."
SETTINGS = {"security": {"auth": {"selectedType": "gemini-api-key"}}, "privacy": {"usageStatisticsEnabled": False},
            "general": {"maxAttempts": 1}}


@dataclass
class Upstreams:
    gemini: FakeGemini
    openai: FakeUpstream
    anthropic: FakeAnthropic


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with FakeGemini() as gemini, FakeUpstream() as openai, FakeAnthropic() as anthropic:
        yield Upstreams(gemini, openai, anthropic)


@pytest.fixture(scope="module")
def gateway(module_gateway: Callable[[str], Gateway], upstreams: Upstreams) -> Gateway:
    return module_gateway(textwrap.dedent(f"""
    server:
      request_timeout_s: 30
    llm_providers:
      - id: gem
        type: gemini
        base_url: {upstreams.gemini.base_url}/v1beta
        api_keys: ["AIza-upstream-key-1111111"]
        models: [gcli-gemini-model]
        pricing: {PRICING}
      - id: oai
        type: openai-compatible
        base_url: {upstreams.openai.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models: [gcli-openai-model]
        pricing: {PRICING}
      - id: claude
        type: anthropic
        base_url: {upstreams.anthropic.base_url}
        api_keys: ["sk-ant-upstream-key-1111111"]
        models: [gcli-claude-model]
        pricing: {PRICING}
    model_aliases:
      gc-gemini: gem:gcli-gemini-model
      gc-openai: oai:gcli-openai-model
      gc-anthropic: claude:gcli-claude-model
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """))


def run_gemini(gemini: Path, gateway: Gateway, tmp_path: Path, model: str) -> str:
    """One headless turn (``gemini -p``) in a fresh directory holding ``secret.txt``; its stdout."""
    work, home = agent_dirs(tmp_path)
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp_path), "TERM": "dumb",
           "GOOGLE_GEMINI_BASE_URL": gateway.base_url, "GEMINI_API_KEY": CLIENT_KEY,
           "GEMINI_CLI_TRUST_WORKSPACE": "true", "GEMINI_CLI_NO_RELAUNCH": "true"}
    done = subprocess.run([str(gemini), "-p", PROMPT, "-m", model], cwd=work, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    return finished(done, "gemini", gateway)


def read_file(tmp_path: Path) -> dict[str, str]:
    return {"file_path": str(tmp_path / "work" / "secret.txt")}


def test_through_a_gemini_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                   tmp_path: Path) -> None:
    fake = upstreams.gemini
    fake.reset()
    fake.script(GeminiBehaviour(function_call={"name": "read_file", "args": read_file(tmp_path)}),
                GeminiBehaviour(text=ANSWER))
    assert run_gemini(agent("gemini"), gateway, tmp_path, "gc-gemini").strip() == ANSWER
    first, second = fake.requests
    assert first.path == "/v1beta/models/gcli-gemini-model:streamGenerateContent?alt=sse"
    assert first.headers["x-goog-api-client"].startswith("google-genai-sdk/")  # passed through, as the body
    calls = [p for c in second.json["contents"] for p in c["parts"] if "functionCall" in p]
    assert calls and calls[-1]["thoughtSignature"] == "skip_thought_signature_validator"
    responses = [p["functionResponse"] for c in second.json["contents"] for p in c["parts"] if "functionResponse" in p]
    assert responses and "PINEAPPLE-42" in json.dumps(responses[-1])
    check_ledger(gateway, "gcli-gemini-model", [(gemini_prompt_tokens(first.json), 5),
                                                (gemini_prompt_tokens(second.json), len(ANSWER.split()))])


def test_through_an_openai_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                    tmp_path: Path) -> None:
    fake = upstreams.openai
    fake.reset()
    call = {"name": "read_file", "arguments": read_file(tmp_path)}
    fake.script(Behaviour(tool_calls=[call]), Behaviour(text=ANSWER))
    assert run_gemini(agent("gemini"), gateway, tmp_path, "gc-openai").strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    assert first["messages"][0]["role"] == "system" and first["stream"] is True
    assert "skip_thought_signature_validator" not in json.dumps(second)
    tool = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool and "PINEAPPLE-42" in tool[-1]["content"]
    check_ledger(gateway, "gcli-openai-model", [(prompt_tokens_of(first), len(json.dumps(call["arguments"]).split())),
                                                (prompt_tokens_of(second), len(ANSWER.split()))])


def test_through_an_anthropic_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                       tmp_path: Path) -> None:
    fake = upstreams.anthropic
    fake.reset()
    fake.script(AnthropicBehaviour(text="", tool_uses=[{"name": "read_file", "input": read_file(tmp_path)}]),
                AnthropicBehaviour(text=ANSWER))
    assert run_gemini(agent("gemini"), gateway, tmp_path, "gc-anthropic").strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    assert "skip_thought_signature_validator" not in json.dumps(second)
    results = [b for m in second["messages"] if isinstance(m["content"], list) for b in m["content"]
               if b.get("type") == "tool_result"]
    assert results and "PINEAPPLE-42" in json.dumps(results[-1]["content"])
    check_ledger(gateway, "gcli-claude-model", [(input_tokens_of(first), 0),
                                                (input_tokens_of(second), len(ANSWER.split()))])
