"""The guard stage in the Anthropic and Google dialects: a blocked request is a 400 in the dialect's
own error shape with the guard and the entity; a masked request to a provider of the same protocol
is translated (its upstream sees placeholders, the client its own values back), one the guards let
through untouched still passes through; a block mid-stream ends with the dialect's error event.
Anthropic through its official SDK; Google in raw HTTP, its SDK not being in the test extra."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini, GeminiBehaviour
from tests.fake_upstream import Behaviour
from tests.integration.guardrails.conftest import EMAIL, LEAKED_KEY, row_of, upstream_calls

LEAKY = "Part one is fine. The code is LEAK-0042 and more text after it."


def claude_sdk(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def google(gateway: Gateway, model: str, text: str, stream: bool = False) -> httpx.Response:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return httpx.post(f"{gateway.base_url}/v1beta/models/{model}:{method}", headers={"x-goog-api-key": CLIENT_KEY},
                      json={"contents": [{"role": "user", "parts": [{"text": text}]}]}, timeout=30)


def test_anthropic_a_blocked_request_is_anthropics_400(guarded: Gateway, claude_server: FakeAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_sdk(guarded).messages.create(model="claude-plain", max_tokens=50,
                                            messages=[{"role": "user", "content": f"use {LEAKED_KEY}"}])
    body = caught.value.response.json()
    assert body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "The request was blocked by guardrail 'secrets' (openai_key).",
        "code": "guardrail_blocked", "guardrail": "secrets", "entity": "openai_key"}}
    assert upstream_calls(claude_server) == []
    row = row_of(guarded, caught.value.response.headers["x-request-id"])
    assert (row["status"], row["error_code"]) == (400, "guardrail_blocked")


def test_anthropic_masked_is_translated_and_restored(guarded: Gateway, claude_server: FakeAnthropic) -> None:
    claude_server.set_default(Behaviour(text="Dear <EMAIL_1>, write to help@example.org.", chunks=7))
    client = claude_sdk(guarded)
    message = client.messages.create(model="claude", max_tokens=50, system=f"The user is {EMAIL}.",
                                     messages=[{"role": "user", "content": f"Mail {EMAIL}"}])
    assert message.content[0].text == f"Dear {EMAIL}, write to <EMAIL_2>."  # type: ignore[union-attr]
    sent = json.dumps(claude_server.requests[-1].json)
    assert "<EMAIL_1>" in sent and EMAIL not in sent
    with client.messages.stream(model="claude", max_tokens=50,
                                messages=[{"role": "user", "content": f"Mail {EMAIL}"}]) as stream:
        assert "".join(stream.text_stream) == f"Dear {EMAIL}, write to <EMAIL_2>."


def test_anthropic_untouched_by_the_guards_still_passes_through(guarded: Gateway,
                                                                claude_server: FakeAnthropic) -> None:
    body: dict[str, Any] = {"model": "claude-plain", "max_tokens": 50, "top_k": 7, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]}]}
    answer = httpx.post(guarded.base_url + "/v1/messages", json=body, timeout=30,
                        headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert answer.status_code == 200
    assert claude_server.requests[-1].json == {**body, "model": "claude-x"}  # as the client sent it


def test_anthropic_a_block_mid_stream_is_anthropics_error_event(guarded: Gateway,
                                                                 claude_server: FakeAnthropic) -> None:
    claude_server.set_default(Behaviour(text=LEAKY, chunks=12))
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught, claude_sdk(guarded).messages.stream(
            model="claude-leaky", max_tokens=50, messages=[{"role": "user", "content": "the code?"}]) as stream:
        for text in stream.text_stream:
            received.append(text)
    assert caught.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "The answer was blocked by guardrail 'no-leak' (leak).",
        "code": "guardrail_blocked", "guardrail": "no-leak", "entity": "leak"}}
    assert LEAKY.startswith("".join(received)) and "LEAK" not in "".join(received)


def test_google_a_blocked_request_is_googles_400(guarded: Gateway, gemini_server: FakeGemini) -> None:
    answer = google(guarded, "gem-plain", f"use {LEAKED_KEY}")
    assert answer.status_code == 400
    assert answer.json() == {"error": {
        "code": 400, "message": "The request was blocked by guardrail 'secrets' (openai_key).",
        "status": "INVALID_ARGUMENT", "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "guardrail_blocked",
            "domain": "llm-gateway", "metadata": {"guardrail": "secrets", "entity": "openai_key"}}]}}
    assert upstream_calls(gemini_server) == []


def test_google_masked_is_translated_and_restored(guarded: Gateway, gemini_server: FakeGemini) -> None:
    gemini_server.set_default(GeminiBehaviour(text="Dear <EMAIL_1>, done.", chunks=6))
    whole = google(guarded, "gem", f"Mail {EMAIL}")
    assert whole.json()["candidates"][0]["content"]["parts"][0]["text"] == f"Dear {EMAIL}, done."
    sent = json.dumps(gemini_server.requests[-1].json)
    assert "<EMAIL_1>" in sent and EMAIL not in sent
    streamed = google(guarded, "gem", f"Mail {EMAIL}", stream=True)
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    text = "".join(p.get("text", "") for e in events for c in e.get("candidates", ())
                   for p in c["content"]["parts"])
    assert text == f"Dear {EMAIL}, done."


def test_google_untouched_by_the_guards_still_passes_through(guarded: Gateway, gemini_server: FakeGemini) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}], "generationConfig": {"topK": 3},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
    answer = httpx.post(f"{guarded.base_url}/v1beta/models/gem-plain:generateContent", json=body, timeout=30,
                        headers={"x-goog-api-key": CLIENT_KEY})
    assert answer.status_code == 200
    assert gemini_server.requests[-1].json == body


def test_google_a_block_mid_stream_is_googles_error(guarded: Gateway, gemini_server: FakeGemini) -> None:
    gemini_server.set_default(GeminiBehaviour(text=LEAKY, chunks=10))
    streamed = google(guarded, "gem-leaky", "the code?", stream=True)
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == {"error": {
        "code": 400, "message": "The answer was blocked by guardrail 'no-leak' (leak).", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "guardrail_blocked",
                     "domain": "llm-gateway", "metadata": {"guardrail": "no-leak", "entity": "leak"}}]}}
    text = "".join(p.get("text", "") for e in events[:-1] for c in e.get("candidates", ())
                   for p in c["content"]["parts"])
    assert LEAKY.startswith(text) and "LEAK" not in text


def test_a_masked_token_count_is_the_gateways_estimate_and_sends_nothing(guarded: Gateway,
                                                                          claude_server: FakeAnthropic,
                                                                          gemini_server: FakeGemini) -> None:
    # a count passed through would carry the client's own text: with a guard masking it, the gateway counts
    counted = claude_sdk(guarded).messages.with_raw_response.count_tokens(
        model="claude", messages=[{"role": "user", "content": f"Mail {EMAIL} please"}])
    assert counted.headers["x-gateway-token-count"] == "estimate" and counted.parse().input_tokens > 0
    google_count = httpx.post(f"{guarded.base_url}/v1beta/models/gem:countTokens", timeout=30,
                              headers={"x-goog-api-key": CLIENT_KEY},
                              json={"contents": [{"role": "user", "parts": [{"text": f"Mail {EMAIL}"}]}]})
    assert google_count.status_code == 200 and google_count.headers["x-gateway-token-count"] == "estimate"
    assert google_count.json()["totalTokens"] > 0
    assert upstream_calls(claude_server) == [] and upstream_calls(gemini_server) == []
