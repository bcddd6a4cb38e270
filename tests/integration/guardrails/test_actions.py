"""Each type of local guard with each action, on a chat request through the official ``openai`` SDK:
what the upstream received, what the client got back, and what the ledger says (``pii``, ``secrets``
and ``regex`` blocking, masking and logging; the cases not covered here are in test_openai.py)."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.guardrails.conftest import row_of

GITHUB_TOKEN = "ghp_" + "aB3dE6gH9jK2" * 3  # a token of GitHub's shape (not a real one)
IBAN = "DE89 3704 0044 0532 0130 00"  # the checksum-valid example IBAN


def ask(gateway: Gateway, model: str, text: str) -> tuple[int, str, str]:
    """(status, the answer's text or the error's entity, the request id)."""
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
    try:
        raw = client.chat.completions.with_raw_response.create(model=model,
                                                               messages=[{"role": "user", "content": text}])
    except openai.BadRequestError as exc:
        return 400, exc.response.json()["error"]["entity"], exc.response.headers["x-request-id"]
    return 200, raw.parse().choices[0].message.content or "", raw.headers["x-request-id"]


@pytest.mark.parametrize(("model", "text", "sent", "ledger"), [
    ("iban-blocked", f"pay to {IBAN} today", None, "iban-block:block:input:1:iban"),
    ("gh-masked", f"my token is {GITHUB_TOKEN}", "my token is <GITHUB_TOKEN_1>", "gh-mask:mask:input:1:github_token"),
    ("gh-logged", f"my token is {GITHUB_TOKEN}", f"my token is {GITHUB_TOKEN}", "gh-log:log:input:1:github_token"),
    ("orders-masked", "where is ORD-123456?", "where is <ORDER_ID_1>?", "orders-mask:mask:input:1:order_id"),
    ("orders-logged", "where is ORD-123456?", "where is ORD-123456?", "orders-log:log:input:1:order_id"),
])
def test_each_type_and_action(guarded: Gateway, fake_server: FakeUpstream, model: str, text: str, sent: str | None,
                              ledger: str) -> None:
    status, said, request_id = ask(guarded, model, text)
    if sent is None:
        assert (status, said) == (400, ledger.rsplit(":", 1)[1])
        assert fake_server.requests == []
    else:
        assert status == 200 and fake_server.requests[-1].json["messages"][0]["content"] == sent
    assert row_of(guarded, request_id)["guardrails"] == ledger


def test_an_operator_pattern_masked_is_restored_in_the_answer(guarded: Gateway, fake_server: FakeUpstream) -> None:
    fake_server.set_default(Behaviour(text="<ORDER_ID_1> ships tomorrow; ORD-999999 next week."))
    status, said, _ = ask(guarded, "orders-masked", "where is ORD-123456?")
    # the client's own order number restored; one the model made up, masked on output
    assert (status, said) == (200, "ORD-123456 ships tomorrow; <ORDER_ID_2> next week.")
