"""The guard stage on OpenAI's chat, completions and embeddings, through the official ``openai`` SDK:
block (a secret, an operator's pattern), mask with restore, log only, output blocks, the metric,
the ledger and the access log, and what must not match (order numbers, versions, dates)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_gemini import FakeGemini, GeminiBehaviour
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.guardrails.conftest import EMAIL, LEAKED_KEY, row_of, upstream_calls


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def chat(gateway: Gateway, model: str, text: str) -> Any:
    return sdk(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}])


def refused(call: Any) -> tuple[dict[str, Any], str]:
    """The error body and request id of a call the gateway refused with 400."""
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    return caught.value.response.json()["error"], caught.value.response.headers["x-request-id"]


def guard_actions(gateway: Gateway, guardrail: str, action: str) -> float:
    for line in gateway.metrics().splitlines():
        if line.startswith("gateway_guardrail_actions_total{") and f'guardrail="{guardrail}"' in line \
                and f'action="{action}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_secret_in_a_chat_is_blocked_before_anything_reaches_an_upstream(guarded: Gateway,
                                                                          fake_server: FakeUpstream) -> None:
    before = guard_actions(guarded, "secrets", "block")
    error, request_id = refused(lambda: chat(guarded, "plain", f"my key is {LEAKED_KEY}, keep it safe"))
    assert error["code"] == "guardrail_blocked" and error["type"] == "invalid_request_error"
    assert (error["guardrail"], error["entity"]) == ("secrets", "openai_key")
    assert error["message"] == "The request was blocked by guardrail 'secrets' (openai_key)."
    assert upstream_calls(fake_server) == []
    row = row_of(guarded, request_id)
    assert (row["status"], row["error_code"]) == (400, "guardrail_blocked")
    assert row["guardrails"] == "secrets:block:input:1:openai_key"
    assert guard_actions(guarded, "secrets", "block") == before + 1
    log = guarded.logs()
    assert LEAKED_KEY not in log and "Q9xT2mLp8Rv1" not in log
    line = next(json.loads(x) for x in log.splitlines() if request_id in x and '"request"' in x)
    assert line["guardrails"] == [{"guardrail": "secrets", "action": "block", "entity": "openai_key",
                                   "direction": "input", "count": 1}]


def test_an_operator_pattern_blocks_on_its_alias_only(guarded: Gateway, fake_server: FakeUpstream) -> None:
    error, _ = refused(lambda: chat(guarded, "orders", "where is ORD-123456?"))
    assert (error["guardrail"], error["entity"]) == ("orders", "order_id")
    assert upstream_calls(fake_server) == []
    assert chat(guarded, "orders", "where is ORD-12345?").http_response.status_code == 200  # five digits: no match
    assert chat(guarded, "plain", "where is ORD-123456?").http_response.status_code == 200  # not this alias's guard
    assert [r.json["messages"][1]["content"] for r in fake_server.requests] == ["where is ORD-12345?",
                                                                                "where is ORD-123456?"]


def test_mask_hides_the_values_from_the_upstream_and_restore_puts_them_back(guarded: Gateway,
                                                                           fake_server: FakeUpstream) -> None:
    fake_server.set_default(Behaviour(text="I wrote to <EMAIL_1>; call me on +44 20 7946 0958 or mail "
                                           "ops@example.org."))
    raw = chat(guarded, "masked", f"Mail {EMAIL} and call (415) 555-2671, card 4111 1111 1111 1111.")
    sent = fake_server.requests[-1].json["messages"][1]["content"]
    assert sent == "Mail <EMAIL_1> and call <PHONE_1>, card <CARD_1>."
    answer = raw.parse().choices[0].message.content
    # the client's own address comes back; what the model made up itself is masked, never restored
    assert answer == f"I wrote to {EMAIL}; call me on <PHONE_2> or mail <EMAIL_2>."
    row = row_of(guarded, raw.headers["x-request-id"])
    assert (row["status"], row["error_code"]) == (200, None)
    assert set(row["guardrails"].split(",")) == {"pii:mask:input:1:email", "pii:mask:input:1:phone",
                                                  "pii:mask:input:1:card", "pii:mask:output:1:phone",
                                                  "pii:mask:output:1:email"}
    assert EMAIL not in guarded.logs()


def test_log_only_lets_the_text_through_and_counts_it(guarded: Gateway, fake_server: FakeUpstream) -> None:
    raw = chat(guarded, "logged", f"Mail {EMAIL}, twice: {EMAIL}")
    assert raw.http_response.status_code == 200
    assert fake_server.requests[-1].json["messages"][1]["content"] == f"Mail {EMAIL}, twice: {EMAIL}"
    assert row_of(guarded, raw.headers["x-request-id"])["guardrails"] == "pii-log:log:input:2:email"
    assert guard_actions(guarded, "pii-log", "log") >= 1


FALSE_POSITIVES = ("Order 1234567890123456 shipped on 2024-01-15 (invoice 5551234567, ticket #4821). Upgrade "
                   "from version 1.2.3.4 to v10.0.0.1, build 2.14.1; see task-4fQ9xT2mLp8Rv1cZ7nWk3Yb and "
                   "@jane on 15/01/2024 at 12:30:45, ISBN 978-3-16-148410-0.")


def test_order_numbers_versions_and_dates_are_not_personal_data(guarded: Gateway, fake_server: FakeUpstream) -> None:
    raw = chat(guarded, "masked", FALSE_POSITIVES)
    assert raw.http_response.status_code == 200
    assert fake_server.requests[-1].json["messages"][1]["content"] == FALSE_POSITIVES
    assert row_of(guarded, raw.headers["x-request-id"])["guardrails"] == ""


def test_a_blocked_answer_is_a_400_and_still_charged(guarded: Gateway, fake_server: FakeUpstream) -> None:
    fake_server.set_default(Behaviour(text="The code is LEAK-0042."))
    error, request_id = refused(lambda: chat(guarded, "leaky", "what is the code?"))
    assert (error["code"], error["guardrail"], error["entity"]) == ("guardrail_blocked", "no-leak", "leak")
    assert error["message"] == "The answer was blocked by guardrail 'no-leak' (leak)."
    assert "LEAK-0042" not in json.dumps(error)
    assert len(fake_server.requests) == 1  # the upstream answered: the request is charged
    row = row_of(guarded, request_id)
    assert (row["status"], row["error_code"], row["guardrails"]) == (400, "guardrail_blocked",
                                                                     "no-leak:block:output:1:leak")
    assert row["tokens_out"] > 0


def test_embeddings_are_masked_and_blocked(guarded: Gateway, fake_server: FakeUpstream) -> None:
    client = sdk(guarded)
    done = client.embeddings.create(model="masked", input=[f"about {EMAIL}", "nothing here"])
    assert len(done.data) == 2
    assert fake_server.requests[-1].json["input"] == ["about <EMAIL_1>", "nothing here"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="plain", input=f"the key {LEAKED_KEY}")
    assert caught.value.response.json()["error"]["entity"] == "openai_key"
    assert len(fake_server.requests) == 1


def test_completions_are_masked_blocked_and_restored(guarded: Gateway, gemini_server: FakeGemini) -> None:
    client = sdk(guarded)
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="gem-plain", prompt=f"key: {LEAKED_KEY}")
    assert caught.value.response.json()["error"]["code"] == "guardrail_blocked"
    assert gemini_server.requests == []
    gemini_server.set_default(GeminiBehaviour(text="Dear <EMAIL_1>, thanks."))
    done = client.completions.create(model="gem", prompt=f"Write to {EMAIL}")
    assert done.choices[0].text == f"Dear {EMAIL}, thanks."
    sent = gemini_server.requests[-1].json
    assert "<EMAIL_1>" in json.dumps(sent) and EMAIL not in json.dumps(sent)
    streamed = client.completions.create(model="gem", prompt=f"Write to {EMAIL}", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == f"Dear {EMAIL}, thanks."


def test_guards_reload_live_with_the_config(start_gateway: Any, fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake))
    assert chat(gateway, "fast", "order ORD-123456").http_response.status_code == 200
    version = gateway.readiness()["config"]["version"]
    gateway.write_config(basic_config(fake) + """
guardrails:
  default: [orders]
  guards:
    - {name: orders, type: regex, on: input, action: block, patterns: [{name: order_id, pattern: 'ORD-[0-9]{6}'}]}
""")
    gateway.wait_for_version_change(version)
    error, _ = refused(lambda: chat(gateway, "fast", "order ORD-123456"))
    assert (error["guardrail"], error["entity"]) == ("orders", "order_id")
    assert len(fake.requests) == 1
