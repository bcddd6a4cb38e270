"""The engine's API on OpenAI-shape bodies: which guards a request passes, masks with numbered
placeholders and their restore, blocks, logs, and the events the pipeline counts."""

from __future__ import annotations

import copy
import json
from typing import Any

from gateway.core.policy import Budget, Limits
from gateway.core.targets import ClientSpec
from gateway.guardrails.body import chunk_texts, request_texts

from .helpers import guard_for, one_guard, run, snapshot

PII_RESTORE = one_guard("pii", extra="restore: true")


def chat(*contents: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": c} for c in contents]}


def test_a_value_keeps_its_placeholder_across_messages_and_the_request_is_not_mutated():
    body = chat("I am bob@example.com", "cc eve@example.org and bob@example.com")
    body["messages"].append({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "send", "arguments": '{"to": "eve@example.org"}'}}]})
    body["messages"].append({"role": "tool", "tool_call_id": "c1",
                             "content": [{"type": "text", "text": "sent to eve@example.org"}]})
    before = copy.deepcopy(body)
    guard = guard_for(PII_RESTORE)
    verdict = run(guard.scan_input("chat", body))
    assert body == before
    messages = verdict.body["messages"]
    assert [m.get("content") for m in messages[:2]] == ["I am <EMAIL_1>", "cc <EMAIL_2> and <EMAIL_1>"]
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"to": "<EMAIL_2>"}'
    assert messages[3]["content"] == [{"type": "text", "text": "sent to <EMAIL_2>"}]
    assert verdict.changed and [(e.action, e.entity, e.times) for e in guard.records()] == [("mask", "email", 5)]


def test_the_answer_gets_the_originals_back():
    guard = guard_for(PII_RESTORE)
    run(guard.scan_input("chat", chat("Reply to bob@example.com or +44 20 7946 0958")))
    answer: dict[str, Any] = {"id": "x", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "I wrote to <EMAIL_1> and will call <PHONE_1>.",
        "tool_calls": [{"id": "t", "type": "function",
                        "function": {"name": "f", "arguments": '{"a": "<EMAIL_1>"}'}}]}}]}
    verdict = run(guard.scan_output("chat", answer))
    message = verdict.body["choices"][0]["message"]
    assert message["content"] == "I wrote to bob@example.com and will call +44 20 7946 0958."
    assert message["tool_calls"][0]["function"]["arguments"] == '{"a": "bob@example.com"}'
    assert answer["choices"][0]["message"]["content"].startswith("I wrote to <EMAIL_1>")  # the answer object untouched


def test_without_restore_the_answer_keeps_the_placeholders():
    guard = guard_for(one_guard("pii"))
    run(guard.scan_input("chat", chat("I am bob@example.com")))
    verdict = run(guard.scan_output("chat", {"choices": [{"message": {"content": "Hi <EMAIL_1>"}}]}))
    assert verdict.body["choices"][0]["message"]["content"] == "Hi <EMAIL_1>"


def test_a_placeholder_the_client_wrote_itself_is_never_handed_out():
    guard = guard_for(PII_RESTORE)
    verdict = run(guard.scan_input("chat", chat("my template says <EMAIL_1>; my address is bob@example.com")))
    assert verdict.body["messages"][0]["content"] == "my template says <EMAIL_1>; my address is <EMAIL_2>"
    out = run(guard.scan_output("chat", {"choices": [{"message": {"content": "<EMAIL_1> / <EMAIL_2>"}}]}))
    assert out.body["choices"][0]["message"]["content"] == "<EMAIL_1> / bob@example.com"


def test_a_block_names_the_guard_and_the_entity_never_the_text():
    guard = guard_for(one_guard("secrets", action="block"))
    key = "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5"
    body = chat("hello", f"my key is {key}")
    verdict = run(guard.scan_input("chat", body))
    assert verdict.blocked is not None and verdict.body is body and not verdict.changed
    blocked = verdict.blocked
    assert (blocked.guardrail, blocked.entity, blocked.direction) == ("g", "openai_key", "input")
    assert key not in verdict.blocked.message() and "4fQ9" not in repr(verdict.blocked) + repr(guard.records())
    assert [(e.guardrail, e.action, e.entity) for e in guard.records()] == [("g", "block", "openai_key")]
    error = blocked.error()
    assert error.status == 400 and json.loads(error.to_body()) == {"error": {
        "message": "The request was blocked by guardrail 'g' (openai_key).", "type": "invalid_request_error",
        "code": "guardrail_blocked", "param": None, "guardrail": "g", "entity": "openai_key"}}


def test_log_only_records():
    guard = guard_for(one_guard("pii", action="log"))
    body = chat("bob@example.com and eve@example.org, 4111 1111 1111 1111")
    verdict = run(guard.scan_input("chat", body))
    assert verdict.blocked is None and verdict.body is body and not verdict.changed
    assert [(e.action, e.entity, e.times) for e in guard.records()] == [("log", "email", 2), ("log", "card", 1)]
    assert guard.records()[0].as_record() == {"guardrail": "g", "action": "log", "entity": "email",
                                              "direction": "input", "count": 2}


def test_other_operations_have_their_texts_guarded():
    guard = guard_for(one_guard("pii"))
    completions = run(guard.scan_input("completions", {"model": "m", "prompt": ["to bob@example.com", [1, 2, 3]]}))
    assert completions.body["prompt"] == ["to <EMAIL_1>", [1, 2, 3]]
    embeddings = run(guard.scan_input("embeddings", {"model": "m", "input": "call 415-555-2671"}))
    assert embeddings.body["input"] == "call <PHONE_1>"
    responses = run(guard.scan_input("responses", {"model": "m", "instructions": "mail ops@example.com", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "I am bob@example.com"}]},
        {"type": "function_call_output", "call_id": "c", "output": "found eve@example.org"}]}))
    assert responses.body["instructions"] == "mail <EMAIL_2>"
    assert responses.body["input"][0]["content"][0]["text"] == "I am <EMAIL_1>"  # bob, met in the prompt above
    assert responses.body["input"][1]["output"] == "found <EMAIL_3>"
    assert run(guard.scan_input("images", {"prompt": "draw bob@example.com"})).body == {"prompt": "draw <EMAIL_1>"}
    assert run(guard.scan_input("files", {"purpose": "bob@example.com"})).body == {"purpose": "bob@example.com"}


def test_the_rest_of_the_surface_has_its_texts_guarded():
    guard = guard_for(one_guard("pii"))
    moderation = run(guard.scan_input("moderations", {"input": ["to bob@example.com", "fine"]}))
    assert moderation.body["input"] == ["to <EMAIL_1>", "fine"]
    parts = run(guard.scan_input("moderations", {"input": [{"type": "text", "text": "eve@example.org"},
                                                           {"type": "image_url", "image_url": {"url": "x"}}]}))
    assert parts.body["input"][0]["text"] == "<EMAIL_2>" and parts.body["input"][1]["image_url"] == {"url": "x"}
    speech = run(guard.scan_input("audio", {"model": "tts", "input": "call 415-555-2671", "voice": "alloy"}))
    assert speech.body == {"model": "tts", "input": "call <PHONE_1>", "voice": "alloy"}
    thread = run(guard.scan_input("threads", {
        "role": "user", "content": "bob@example.com", "instructions": "mail eve@example.org",
        "thread": {"messages": [{"role": "user", "content": [{"type": "text", "text": "415-555-2671"}]}]},
        "tool_outputs": [{"tool_call_id": "t", "output": "ops@example.com"}]}))
    assert thread.body["content"] == "<EMAIL_1>" and thread.body["instructions"] == "mail <EMAIL_2>"
    assert thread.body["thread"]["messages"][0]["content"][0]["text"] == "<PHONE_1>"
    assert thread.body["tool_outputs"][0]["output"] == "<EMAIL_3>"


def test_the_guards_of_a_request_come_from_default_alias_and_client_in_that_order():
    snap = snapshot("""
model_aliases:
  fast: {targets: [openai-prod:gpt-4o], guardrails: [orders, pii]}
guardrails:
  default: [pii]
  guards:
    - {name: pii, type: pii, on: input, action: mask, entities: [email]}
    - {name: orders, type: regex, on: input, action: mask, patterns: [{name: order, pattern: 'ORD-[0-9]{4}'}]}
    - {name: keys, type: secrets, on: input, action: block}
""")
    client = ClientSpec(id="c", digest=b"", allowed_providers=None, allowed_models=None, limits=Limits(),
                        budget=Budget(), admin=False, guardrails=("keys", "orders"))
    assert snap.guardrails.names_for("fast", client) == ("pii", "orders", "keys")
    assert snap.guardrails.names_for("other", client) == ("pii", "keys", "orders")
    guard = snap.guardrails.for_request("fast", None)
    verdict = run(guard.scan_input("chat", chat("ORD-1234 for bob@example.com")))
    assert verdict.body["messages"][0]["content"] == "<ORDER_1> for <EMAIL_1>"
    plain = run(snap.guardrails.for_request(None, None).scan_input("chat", chat("ORD-1234 for bob@example.com")))
    assert plain.body["messages"][0]["content"] == "ORD-1234 for <EMAIL_1>"


def test_an_unguarded_request_costs_nothing_and_changes_nothing():
    guard = snapshot("").guardrails.for_request(None, None)
    body = chat("bob@example.com")
    assert run(guard.scan_input("chat", body)).body is body
    assert guard.output_scanner().feed("eve@example.org").text == "eve@example.org"


def test_overlapping_matches_of_two_guards():
    guard = guard_for("""
guardrails:
  default: [pii, audit]
  guards:
    - {name: pii, type: pii, on: input, action: mask, entities: [email]}
    - {name: audit, type: regex, on: input, action: log, patterns: [{name: example_domain, pattern: 'example[.]com'}]}
""")
    verdict = run(guard.scan_input("chat", chat("bob@example.com")))
    assert verdict.body["messages"][0]["content"] == "<EMAIL_1>"
    assert {(e.guardrail, e.action, e.entity) for e in verdict.events} == {("pii", "mask", "email"),
                                                                         ("audit", "log", "example_domain")}


def test_stream_chunks_name_their_texts():
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": "Hi", "tool_calls": [
        {"index": 1, "function": {"arguments": '{"a":'}}]}}]}
    found = chunk_texts("chat", chunk)
    assert found.texts == ("Hi", '{"a":') and found.keys == (("content", 0), ("tool", 0, 1))
    replaced = found.replaced(chunk, ["Hello", '{"b":'])
    assert replaced["choices"][0]["delta"]["content"] == "Hello" and chunk["choices"][0]["delta"]["content"] == "Hi"
    assert chunk_texts("responses", {"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                                     "delta": "x"}).texts == ("x",)
    assert chunk_texts("completions", {"choices": [{"index": 0, "text": "y"}]}).texts == ("y",)
    assert request_texts("chat", {"messages": "not a list"}).texts == ()


def test_a_webhook_token_never_shows_in_a_repr():
    snap = snapshot("""
guardrails:
  guards:
    - {name: h, type: webhook, on: input, action: block, url: "http://x.test/", headers: {X-Token: "${T}"}}
""", {"T": "tok-very-secret-123"})
    assert "tok-very-secret-123" not in repr(snap.guardrails.guards) + repr(snap)


def test_texts_holding_the_join_character_are_scanned_one_by_one():
    guard = guard_for(one_guard("pii"))
    verdict = run(guard.scan_input("chat", chat("a\x00b bob@example.com", "eve@example.org")))
    assert [m["content"] for m in verdict.body["messages"]] == ["a\x00b <EMAIL_1>", "<EMAIL_2>"]


def test_a_long_run_of_key_characters_is_released_in_bounded_pieces():
    scanner = guard_for(one_guard("secrets", on="output")).output_scanner()
    sent = "".join(scanner.feed("x" * 100).text for _ in range(200))
    assert len(sent) >= 200 * 100 - 4096  # held back: at most the longest token a key can be
    assert sent + run(scanner.finish()).text == "x" * 20000
