"""The webhook guard against a real HTTP server on loopback, and the moderation guard against the fake
upstream's /v1/moderations, both reached through the callables the engine is handed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.core.request import UpstreamRequest
from gateway.guardrails.engine import Verdict
from gateway.guardrails.remote import HttpAnswer, ModerationCall, Remote
from tests.fake_upstream import FakeUpstream
from tests.fake_webhook import FakeWebhook

from .helpers import run, snapshot

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "My mail is bob@example.com, hello"}]}


@pytest.fixture(scope="module")
def hook() -> Iterator[FakeWebhook]:
    with FakeWebhook() as server:
        yield server


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(hook: FakeWebhook, fake: FakeUpstream) -> None:
    hook.requests.clear()
    hook.answer()
    fake.reset()


def remote_for(client: httpx.AsyncClient, fake: FakeUpstream | None = None) -> Remote:
    async def post(request: UpstreamRequest, timeout_s: float) -> HttpAnswer:
        answer = await client.post(request.url, headers=dict(request.headers), content=request.content,
                                   timeout=timeout_s)
        return HttpAnswer(answer.status_code, answer.content)

    async def moderate(call: ModerationCall) -> Any:
        assert fake is not None
        answer = await client.post(f"{fake.base_url}/v1/moderations", json=call.body(), timeout=call.timeout_s,
                                   headers={"Authorization": "Bearer sk-gateway-own-provider-key-0001"})
        answer.raise_for_status()
        return answer.json()

    return Remote(post=post, moderate=moderate)


def webhook_config(url: str, extra: str = "", action: str = "block", on: str = "input") -> str:
    return f"""
guardrails:
  default: [pii, hook]
  guards:
    - {{name: pii, type: pii, on: both, action: mask}}
    - {{name: hook, type: webhook, on: {on}, action: {action}, url: "{url}",
        headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}{", " + extra if extra else ""}}}
"""


def scan(config: str, fake: FakeUpstream | None = None, body: dict[str, Any] = CHAT,
         env: dict[str, str] | None = None) -> Verdict:
    async def go() -> Verdict:
        async with httpx.AsyncClient() as client:
            guard = snapshot(config, env or {"HOOK_TOKEN": "hook-secret"}).guardrails.for_request(
                None, None, remote_for(client, fake))
            return await guard.scan_input("chat", body)
    return run(go())


def test_the_webhook_sees_the_masked_texts_and_the_configured_headers(hook):
    verdict = scan(webhook_config(hook.url))
    assert verdict.blocked is None and verdict.body["messages"][1]["content"] == "My mail is <EMAIL_1>, hello"
    sent = hook.requests[-1]
    assert sent.json == {"guardrail": "hook", "direction": "input",
                         "texts": ["Be brief.", "My mail is <EMAIL_1>, hello"]}
    assert sent.headers["authorization"] == "Bearer hook-secret"
    assert sent.headers["content-type"] == "application/json"


def test_a_block_answer_blocks_with_its_reason_code(hook):
    hook.answer({"action": "block", "reason": "toxicity"})
    verdict = scan(webhook_config(hook.url))
    assert verdict.blocked is not None
    blocked = verdict.blocked
    assert (blocked.guardrail, blocked.entity, blocked.direction) == ("hook", "toxicity", "input")
    assert "bob@" not in verdict.blocked.message() and "toxicity" in verdict.blocked.message()
    assert [(e.guardrail, e.action, e.entity) for e in verdict.events][-1] == ("hook", "block", "toxicity")


def test_a_reason_that_is_not_a_short_code_is_not_repeated(hook):
    hook.answer({"action": "block", "reason": "the user wrote: my mail is bob@example.com"})
    verdict = scan(webhook_config(hook.url))
    assert verdict.blocked is not None and verdict.blocked.entity == "webhook"


def test_a_replace_answer_replaces_the_texts(hook):
    hook.answer({"action": "replace", "texts": ["Be brief.", "[redacted by policy]"]})
    verdict = scan(webhook_config(hook.url))
    assert verdict.changed and verdict.body["messages"][1]["content"] == "[redacted by policy]"
    assert CHAT["messages"][1]["content"] == "My mail is bob@example.com, hello"  # the request itself untouched
    assert ("hook", "replace") in [(e.guardrail, e.action) for e in verdict.events]


@pytest.mark.parametrize(("on_error", "blocked"), [("block", True), ("allow", False)])
def test_a_slow_webhook_times_out_and_on_error_decides(hook, on_error, blocked):
    hook.answer({"action": "allow"}, delay_s=2.0)
    started = time.monotonic()
    verdict = scan(webhook_config(hook.url, f"timeout_s: 0.2, on_error: {on_error}"))
    assert time.monotonic() - started < 1.5
    assert (verdict.blocked is not None) is blocked
    if blocked:
        assert verdict.blocked is not None and verdict.blocked.entity == "timeout"
    assert ("hook", "error", "timeout") in [(e.guardrail, e.action, e.entity) for e in verdict.events]


@pytest.mark.parametrize(("answer", "kind"), [
    (dict(status=500), "status_500"),
    (dict(raw=b"this is not json"), "bad_answer"),
    (dict(body={"action": "replace", "texts": ["only one"]}), "bad_answer"),
    (dict(body={"verdict": "ok"}), "bad_answer"),
])
def test_an_unusable_answer_is_an_error(hook, answer, kind):
    hook.answer(**answer)
    verdict = scan(webhook_config(hook.url))
    assert verdict.blocked is not None and verdict.blocked.entity == kind
    verdict = scan(webhook_config(hook.url, "on_error: allow"))
    assert verdict.blocked is None and ("hook", "error", kind) in [(e.guardrail, e.action, e.entity)
                                                                   for e in verdict.events]


def test_an_unreachable_webhook_is_an_error():
    with FakeWebhook() as gone:
        url = gone.url
    verdict = scan(webhook_config(url, "timeout_s: 1"))
    assert verdict.blocked is not None and verdict.blocked.entity == "ConnectError"


def test_a_logging_webhook_only_records(hook):
    hook.answer({"action": "block", "reason": "toxicity"})
    verdict = scan(webhook_config(hook.url, action="log"))
    assert verdict.blocked is None
    assert ("hook", "log", "toxicity") in [(e.guardrail, e.action, e.entity) for e in verdict.events]


def test_an_output_webhook_checks_the_answer(hook):
    hook.answer({"action": "replace", "texts": ["[answer withheld]"]})

    async def go() -> Verdict:
        async with httpx.AsyncClient() as client:
            guard = snapshot(webhook_config(hook.url, on="output"), {"HOOK_TOKEN": "t"}).guardrails.for_request(
                None, None, remote_for(client))
            return await guard.scan_output("chat", {"choices": [{"index": 0, "message": {
                "role": "assistant", "content": "The answer"}}]})
    verdict = run(go())
    assert verdict.body["choices"][0]["message"]["content"] == "[answer withheld]"
    assert hook.requests[-1].json == {"guardrail": "hook", "direction": "output", "texts": ["The answer"]}


def moderation_config(extra: str = "", action: str = "block") -> str:
    return f"""
guardrails:
  default: [mod]
  guards:
    - {{name: mod, type: moderation, on: input, action: {action}, provider: openai-prod{", " + extra if extra else ""}}}
"""


def user(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


def test_moderation_blocks_a_chosen_flagged_category(fake):
    verdict = scan(moderation_config("categories: [violence]"), fake, user("I will flag:violence now"))
    assert verdict.blocked is not None and (verdict.blocked.guardrail, verdict.blocked.entity) == ("mod", "violence")
    call = fake.surface.calls_to("/v1/moderations")[-1]
    assert call.json == {"model": "omni-moderation-latest", "input": ["I will flag:violence now"]}
    assert call.api_key == "sk-gateway-own-provider-key-0001"


def test_moderation_lets_other_categories_and_clean_text_through(fake):
    assert scan(moderation_config("categories: [violence]"), fake, user("this is flag:hate")).blocked is None
    assert scan(moderation_config(), fake, user("a kind word")).blocked is None
    blocked = scan(moderation_config(), fake, user("this is flag:hate")).blocked  # no categories: any
    assert blocked is not None and blocked.entity == "hate"


def test_moderation_with_a_threshold_reads_the_scores(fake):
    assert scan(moderation_config("categories: [harassment]"), fake, user("you are rude")).blocked is None
    blocked = scan(moderation_config("categories: [harassment], threshold: 0.3"), fake, user("you are rude")).blocked
    assert blocked is not None and blocked.entity == "harassment"


def test_a_failing_moderation_call_follows_on_error(fake):
    fake.surface.fail_next(500)
    blocked = scan(moderation_config(), fake, user("hello")).blocked
    assert blocked is not None and blocked.entity == "HTTPStatusError"
    fake.surface.fail_next(500)
    verdict = scan(moderation_config("on_error: allow"), fake, user("hello"))
    assert verdict.blocked is None and [(e.action, e.entity) for e in verdict.events] == [("error", "HTTPStatusError")]


def test_moderation_in_log_mode_only_records(fake):
    verdict = scan(moderation_config(action="log"), fake, user("flag:violence"))
    assert verdict.blocked is None and [(e.action, e.entity) for e in verdict.events] == [("log", "violence")]


def test_without_the_callables_a_remote_guard_fails_as_configured():
    guard = snapshot(moderation_config()).guardrails.for_request(None, None)
    verdict = run(guard.scan_input("chat", user("hello")))
    assert verdict.blocked is not None and verdict.blocked.entity == "unavailable"
