"""The guards that ask a service, on the real request path: an operator's webhook (a small HTTP server,
``tests/fake_webhook.py``) selected by a client, and a provider's moderations model (the fake
upstream's ``/v1/moderations``, reached through the gateway's routing with the provider's key)."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Gateway
from tests.fake_upstream import FakeUpstream
from tests.fake_webhook import FakeWebhook
from tests.integration.guardrails.conftest import EMAIL, PARTNER_KEY, row_of


def partner(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=PARTNER_KEY, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, model: str, text: str) -> str:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return answer.choices[0].message.content or ""


def blocked(client: openai.OpenAI, model: str, text: str) -> dict[str, str]:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, model, text)
    error: dict[str, str] = caught.value.response.json()["error"]
    error["request_id"] = caught.value.response.headers["x-request-id"]
    return error


def test_the_webhook_sees_the_texts_after_the_local_guards_and_allows(guarded: Gateway, webhook: FakeWebhook,
                                                                      fake_server: FakeUpstream) -> None:
    assert ask(partner(guarded), "masked", f"Hello, I am {EMAIL}")
    [seen] = webhook.requests
    assert seen.json == {"guardrail": "hook", "direction": "input", "texts": ["Hello, I am <EMAIL_1>"]}
    assert fake_server.requests[-1].json["messages"][0]["content"] == "Hello, I am <EMAIL_1>"


def test_the_webhook_blocks_with_its_reason(guarded: Gateway, webhook: FakeWebhook,
                                            fake_server: FakeUpstream) -> None:
    webhook.answer({"action": "block", "reason": "policy:competitor"})
    error = blocked(partner(guarded), "plain", "Compare us with the competition")
    assert (error["guardrail"], error["entity"]) == ("hook", "policy:competitor")
    assert fake_server.requests == []
    assert row_of(guarded, error["request_id"])["guardrails"] == "hook:block:input:1:policy:competitor"


def test_the_webhook_replaces_the_texts(guarded: Gateway, webhook: FakeWebhook, fake_server: FakeUpstream) -> None:
    webhook.answer({"action": "replace", "texts": ["[redacted by policy]"]})
    assert ask(partner(guarded), "plain", "something sensitive")
    assert fake_server.requests[-1].json["messages"] == [{"role": "user", "content": "[redacted by policy]"}]


@pytest.mark.parametrize(("answer", "entity"), [({"delay_s": 2.0}, "timeout"), ({"status": 503}, "status_503"),
                                                ({"raw": b"not json"}, "bad_answer")])
def test_a_webhook_that_fails_blocks_with_on_error_block(guarded: Gateway, webhook: FakeWebhook,
                                                         fake_server: FakeUpstream, answer: dict[str, object],
                                                         entity: str) -> None:
    webhook.answer(**answer)  # type: ignore[arg-type]
    error = blocked(partner(guarded), "plain", "hello")
    assert (error["guardrail"], error["entity"]) == ("hook", entity)
    assert fake_server.requests == []
    row = row_of(guarded, error["request_id"])
    assert row["guardrails"] == f"hook:error:input:1:{entity},hook:block:input:1:{entity}"


def test_a_client_without_the_webhook_never_calls_it(guarded: Gateway, webhook: FakeWebhook) -> None:
    client = openai.OpenAI(base_url=guarded.base_url + "/v1", api_key="sk-test-client-key-0123456789",
                           max_retries=0, timeout=30)
    assert ask(client, "plain", "hello")
    assert webhook.requests == []


def test_the_moderation_guard_asks_the_providers_moderations_model(guarded: Gateway,
                                                                   fake_server: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=guarded.base_url + "/v1", api_key="sk-test-client-key-0123456789",
                           max_retries=0, timeout=30)
    error = blocked(client, "moderated", "I will flag:violence tonight")
    assert (error["guardrail"], error["entity"]) == ("moderation", "violence")
    [call] = fake_server.surface.calls_to("/v1/moderations")
    assert call.json == {"model": "omni-moderation-latest", "input": ["I will flag:violence tonight"]}
    assert call.api_key == "sk-upstream-key-one-111111"  # the provider's key, through the gateway's routing
    assert fake_server.requests == []  # no chat request went out
    assert ask(client, "moderated", "that was rude")  # harassment, a category this guard does not block
    assert len(fake_server.surface.calls_to("/v1/moderations")) == 2 and len(fake_server.requests) == 1
