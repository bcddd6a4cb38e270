"""Claude Code (the pinned ``@anthropic-ai/claude-code``) through the gateway, headless, against a
fake upstream of each provider type: Anthropic (its requests passed through), OpenAI-compatible
and Gemini (translated both ways).

Each run is one agent turn: the upstream asks for the ``Read`` tool on a file the test wrote, the
agent reads it and sends the result back, the upstream answers. Pass: the agent exits 0 and prints
the scripted answer, the upstream got the file's content as the tool's result, and the ledger
holds both requests with the upstream's exact tokens, their cost and no error.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import ANSWER, PRICING, agent_dirs, check_ledger, finished
from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_anthropic import AnthropicBehaviour, FakeAnthropic, input_tokens_of
from tests.fake_gemini import FakeGemini, GeminiBehaviour
from tests.fake_gemini import prompt_tokens_of as gemini_prompt_tokens
from tests.fake_upstream import Behaviour, FakeUpstream, prompt_tokens_of

PROMPT = "Read the file secret.txt in the current directory with the Read tool and tell me the secret word."
CACHED = 1000  # prompt tokens the Anthropic fake reports read from its cache


@dataclass
class Upstreams:
    anthropic: FakeAnthropic
    openai: FakeUpstream
    gemini: FakeGemini


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with FakeAnthropic() as anthropic, FakeUpstream() as openai, FakeGemini() as gemini:
        yield Upstreams(anthropic, openai, gemini)


@pytest.fixture(scope="module")
def gateway(module_gateway: Callable[[str], Gateway], upstreams: Upstreams) -> Gateway:
    return module_gateway(textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 30
    llm_providers:
      - id: claude
        type: anthropic
        base_url: {upstreams.anthropic.base_url}
        api_keys: ["sk-ant-upstream-key-1111111"]
        models: [claude-upstream]
        pricing: {PRICING}
      - id: oai
        type: openai-compatible
        base_url: {upstreams.openai.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models: [gpt-upstream]
        pricing: {PRICING}
      - id: gem
        type: gemini
        base_url: {upstreams.gemini.base_url}/v1beta
        api_keys: ["AIza-upstream-key-1111111"]
        models: [gemini-upstream]
        pricing: {PRICING}
    model_aliases:
      cc-anthropic: claude:claude-upstream
      cc-openai: oai:gpt-upstream
      cc-gemini: gem:gemini-upstream
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """))


def run_claude(claude: Path, gateway: Gateway, tmp_path: Path, model: str) -> tuple[dict[str, Any], Path]:
    """One headless turn (``claude -p``) in a fresh directory holding ``secret.txt``; its JSON result."""
    work, home = agent_dirs(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    secret = work / "secret.txt"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp), "ANTHROPIC_BASE_URL": gateway.base_url,
           "ANTHROPIC_API_KEY": CLIENT_KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "CLAUDE_CODE_MAX_RETRIES": "0"}
    done = subprocess.run([str(claude), "-p", PROMPT, "--model", model, "--output-format", "json"], cwd=work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    return json.loads(finished(done, "claude", gateway)), secret


def test_through_an_anthropic_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                       tmp_path: Path) -> None:
    fake = upstreams.anthropic
    fake.reset()
    secret = tmp_path / "work" / "secret.txt"
    fake.script(AnthropicBehaviour(text="", tool_uses=[{"name": "Read", "input": {"file_path": str(secret)}}],
                                   cache_read_tokens=CACHED),
                AnthropicBehaviour(text=ANSWER, cache_read_tokens=CACHED))
    result, _ = run_claude(agent("claude"), gateway, tmp_path, "cc-anthropic")
    assert result["result"].strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    # passed through: Claude Code's own body (its system message inside messages, thinking, betas) as it sent it
    assert any(m["role"] == "system" for m in first["messages"]), "Claude Code sent no system message in messages"
    assert fake.requests[0].headers.get("anthropic-beta") and fake.requests[0].path == "/v1/messages"
    results = [b for m in second["messages"] if isinstance(m["content"], list) for b in m["content"]
               if b.get("type") == "tool_result"]
    assert results and "PINEAPPLE-42" in json.dumps(results[-1]["content"])
    inputs = [input_tokens_of(first) + CACHED, input_tokens_of(second) + CACHED]
    check_ledger(gateway, "claude-upstream", [(inputs[0], 0), (inputs[1], len(ANSWER.split()))], CACHED)
    assert result["usage"]["cache_read_input_tokens"] == 2 * CACHED  # what the agent counted


def test_through_an_openai_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                    tmp_path: Path) -> None:
    fake = upstreams.openai
    fake.reset()
    secret = tmp_path / "work" / "secret.txt"
    call = {"name": "Read", "arguments": {"file_path": str(secret)}}
    fake.script(Behaviour(tool_calls=[call]), Behaviour(text=ANSWER))
    result, _ = run_claude(agent("claude"), gateway, tmp_path, "cc-openai")
    assert result["result"].strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    assert first["messages"][0]["role"] == "system" and first["stream"] is True
    tool = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool and "PINEAPPLE-42" in tool[-1]["content"]
    # the agent counts its context from message_start / message_delta: the upstream's prompt tokens
    prompts = [prompt_tokens_of(first), prompt_tokens_of(second)]
    assert result["usage"]["input_tokens"] == sum(prompts)
    check_ledger(gateway, "gpt-upstream", [(prompts[0], len(json.dumps(call["arguments"]).split())),
                                           (prompts[1], len(ANSWER.split()))])


def test_through_a_gemini_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                   tmp_path: Path) -> None:
    fake = upstreams.gemini
    fake.reset()
    secret = tmp_path / "work" / "secret.txt"
    fake.script(GeminiBehaviour(function_call={"name": "Read", "args": {"file_path": str(secret)}}),
                GeminiBehaviour(text=ANSWER))
    result, _ = run_claude(agent("claude"), gateway, tmp_path, "cc-gemini")
    assert result["result"].strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    responses = [p["functionResponse"] for c in second["contents"] for p in c["parts"] if "functionResponse" in p]
    assert responses and "PINEAPPLE-42" in json.dumps(responses[-1])
    prompts = [gemini_prompt_tokens(first), gemini_prompt_tokens(second)]
    assert result["usage"]["input_tokens"] == sum(prompts)
    check_ledger(gateway, "gemini-upstream", [(prompts[0], 5), (prompts[1], len(ANSWER.split()))])
