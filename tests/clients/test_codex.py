"""Codex (the pinned ``@openai/codex``) through the gateway, headless (``codex exec``), against a fake
upstream of each provider type: a Responses-native OpenAI-compatible one (its requests passed
through), a chat-only OpenAI-compatible one, Anthropic and Gemini (translated to chat, then by
their adapters, and back).

Each run is one agent turn: the upstream asks for ``exec_command`` to ``cat`` a file the test wrote,
Codex runs it and sends the output back, the upstream answers. Pass: Codex exits 0 and prints the
scripted answer (its whole stdout), the upstream got the file's content as the call's output, and
the ledger holds both requests with the upstream's exact tokens, their cost and no error.
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
from tests.fake_upstream import Behaviour, FakeUpstream, prompt_tokens_of, responses_usage

PROMPT = "Read the file secret.txt in the current directory and tell me the secret word."


@dataclass
class Upstreams:
    native: FakeUpstream  # serves /v1/responses itself
    chat: FakeUpstream  # configured for chat only: Responses are translated
    anthropic: FakeAnthropic
    gemini: FakeGemini


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with FakeUpstream() as native, FakeUpstream() as chat, FakeAnthropic() as anthropic, FakeGemini() as gemini:
        yield Upstreams(native, chat, anthropic, gemini)


@pytest.fixture(scope="module")
def gateway(module_gateway: Callable[[str], Gateway], upstreams: Upstreams) -> Gateway:
    return module_gateway(textwrap.dedent(f"""
    server:
      request_timeout_s: 30
    llm_providers:
      - id: native
        type: openai-compatible
        base_url: {upstreams.native.base_url}
        api_keys: ["sk-upstream-native-111111"]
        models: [codex-native-model]
        pricing: {PRICING}
      - id: chat
        type: openai-compatible
        base_url: {upstreams.chat.base_url}
        api_keys: ["sk-upstream-chat-222222"]
        models: [codex-chat-model]
        endpoints: [chat]
        pricing: {PRICING}
      - id: claude
        type: anthropic
        base_url: {upstreams.anthropic.base_url}
        api_keys: ["sk-ant-upstream-key-1111111"]
        models: [codex-claude-model]
        pricing: {PRICING}
      - id: gem
        type: gemini
        base_url: {upstreams.gemini.base_url}/v1beta
        api_keys: ["AIza-upstream-key-1111111"]
        models: [codex-gemini-model]
        pricing: {PRICING}
    model_aliases:
      cx-native: native:codex-native-model
      cx-chat: chat:codex-chat-model
      cx-anthropic: claude:codex-claude-model
      cx-gemini: gem:codex-gemini-model
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """))


def run_codex(codex: Path, gateway: Gateway, tmp_path: Path, model: str) -> str:
    """One headless turn (``codex exec``) in a fresh directory holding ``secret.txt``; its stdout."""
    work, home = agent_dirs(tmp_path)
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(textwrap.dedent(f"""
        model = "{model}"
        model_provider = "gateway"

        [analytics]
        enabled = false
        [features]
        plugins = false

        [model_providers.gateway]
        name = "Gateway"
        base_url = "{gateway.base_url}/v1"
        env_key = "GATEWAY_API_KEY"
        wire_api = "responses"
        request_max_retries = 0
        stream_max_retries = 0
        """))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp_path), "TERM": "dumb",
           "GATEWAY_API_KEY": CLIENT_KEY}
    done = subprocess.run([str(codex), "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access", PROMPT],
                          cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    return finished(done, "codex", gateway)


def command(tmp_path: Path) -> dict[str, str]:
    return {"cmd": f"cat {tmp_path / 'work' / 'secret.txt'}"}


def test_through_a_responses_native_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                             tmp_path: Path) -> None:
    fake = upstreams.native
    fake.reset()
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command",
            "arguments": json.dumps(command(tmp_path)), "status": "completed"}
    message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]}
    fake.surface.script_responses([call], [message])
    assert run_codex(agent("codex"), gateway, tmp_path, "cx-native").strip() == ANSWER
    first, second = (c.json for c in fake.surface.calls_to("/v1/responses"))
    assert first["store"] is False and first["model"] == "codex-native-model"  # Codex's own body, model replaced
    outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
    assert outputs and "PINEAPPLE-42" in outputs[-1]["output"]
    none = {"cached_tokens": 0, "reasoning_tokens": 0}
    usages = [responses_usage(first, [call], none), responses_usage(second, [message], none)]
    check_ledger(gateway, "codex-native-model", [(u["input_tokens"], u["output_tokens"]) for u in usages])


def test_through_a_chat_only_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                      tmp_path: Path) -> None:
    fake = upstreams.chat
    fake.reset()
    call = {"name": "exec_command", "arguments": command(tmp_path)}
    fake.script(Behaviour(tool_calls=[call]), Behaviour(text=ANSWER))
    assert run_codex(agent("codex"), gateway, tmp_path, "cx-chat").strip() == ANSWER
    assert fake.surface.calls == []  # never asked for /v1/responses
    first, second = (r.json for r in fake.requests)
    assert first["messages"][0]["role"] == "system" and first["stream"] is True
    tool = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool and "PINEAPPLE-42" in tool[-1]["content"]
    check_ledger(gateway, "codex-chat-model", [(prompt_tokens_of(first), len(json.dumps(call["arguments"]).split())),
                                               (prompt_tokens_of(second), len(ANSWER.split()))])


def test_through_an_anthropic_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                       tmp_path: Path) -> None:
    fake = upstreams.anthropic
    fake.reset()
    fake.script(AnthropicBehaviour(text="", tool_uses=[{"name": "exec_command", "input": command(tmp_path)}]),
                AnthropicBehaviour(text=ANSWER))
    assert run_codex(agent("codex"), gateway, tmp_path, "cx-anthropic").strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    results = [b for m in second["messages"] if isinstance(m["content"], list) for b in m["content"]
               if b.get("type") == "tool_result"]
    assert results and "PINEAPPLE-42" in json.dumps(results[-1]["content"])
    check_ledger(gateway, "codex-claude-model", [(input_tokens_of(first), 0),
                                                 (input_tokens_of(second), len(ANSWER.split()))])


def test_through_a_gemini_provider(agent: Callable[[str], Path], gateway: Gateway, upstreams: Upstreams,
                                   tmp_path: Path) -> None:
    fake = upstreams.gemini
    fake.reset()
    fake.script(GeminiBehaviour(function_call={"name": "exec_command", "args": command(tmp_path)}),
                GeminiBehaviour(text=ANSWER))
    assert run_codex(agent("codex"), gateway, tmp_path, "cx-gemini").strip() == ANSWER
    first, second = (r.json for r in fake.requests)
    responses: list[Any] = [p["functionResponse"] for c in second["contents"] for p in c["parts"]
                            if "functionResponse" in p]
    assert responses and "PINEAPPLE-42" in json.dumps(responses[-1])
    check_ledger(gateway, "codex-gemini-model", [(gemini_prompt_tokens(first), 5),
                                                 (gemini_prompt_tokens(second), len(ANSWER.split()))])
