"""Prompt-cache and reasoning tokens: read from the upstream's usage, priced at their own prices,
kept in the ledger; a ledger written before those columns existed is migrated and still read."""

from __future__ import annotations

import sqlite3
import textwrap
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

PRICES = {"input_token_cost": 1.0, "output_token_cost": 2.0, "cache_read_token_cost": 0.1}


def details_config(fake: FakeUpstream) -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 10
    llm_providers:
      - id: fake
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models: [fake-gpt-4o]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0, cache_read_token_cost: 0.1}}
    api_keys:
      - id: app
        key: {CLIENT_KEY}
    """)


def answer_with_details() -> dict[str, object]:
    return {
        "id": "chatcmpl-details", "object": "chat.completion", "created": 1, "model": "fake-gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
                  "prompt_tokens_details": {"cached_tokens": 800},
                  "completion_tokens_details": {"reasoning_tokens": 300}},
    }


def recent(gw: Gateway, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = httpx.get(gw.base_url + "/admin/v1/requests/recent", headers=ADMIN_HEADERS,
                         timeout=5).json()["requests"]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"the ledger holds {len(rows)} rows, not {count}")


def test_cached_and_reasoning_tokens_are_kept_and_priced(start_gateway: Callable[..., Gateway],
                                                         fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(body=answer_with_details()))
    gw = start_gateway(details_config(fake))
    with gw.client() as client:
        answered = client.post("/v1/chat/completions", json={"model": "fake-gpt-4o",
                                                              "messages": [{"role": "user", "content": "hi"}]})
    assert answered.status_code == 200
    row = recent(gw, 1)[0]
    assert (row["tokens_in"], row["tokens_out"]) == (1000, 500)
    assert (row["cache_read_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (800, 0, 300)
    # 200 uncached input tokens at 1.0, 800 cached at 0.1, 500 output (reasoning included) at 2.0, per 1K
    assert row["cost"] == pytest.approx((200 * 1.0 + 800 * 0.1 + 500 * 2.0) / 1000)
    assert row["kind"] == "model"


LEDGER_V2 = """
CREATE TABLE ledger (time REAL NOT NULL, request_id TEXT NOT NULL, client_id TEXT NOT NULL,
    provider TEXT NOT NULL, model TEXT NOT NULL, key_label TEXT NOT NULL, status INTEGER NOT NULL,
    error_code TEXT, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, cost_usd REAL NOT NULL,
    latency_ms REAL NOT NULL, overhead_ms REAL NOT NULL, stream INTEGER NOT NULL, cache_hit INTEGER NOT NULL)
"""


def test_a_ledger_of_the_previous_schema_is_migrated_and_its_rows_still_read(
        tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> None:
    gw = Gateway(tmp_path_factory.mktemp("gw"), details_config(fake))
    (gw.workdir / "data").mkdir()
    with sqlite3.connect(gw.workdir / "data" / "gateway.db") as db:  # what a gateway of schema 2 left
        db.execute(LEDGER_V2)
        db.execute("INSERT INTO ledger VALUES (?, 'old-request', 'app', 'fake', 'fake-gpt-4o', 'fake#1', 200, NULL,"
                   " 10, 20, 0.5, 12.0, 1.0, 0, 0)", (time.time() - 60,))
        db.execute("PRAGMA user_version = 2")
    fake.set_default(Behaviour(body=answer_with_details()))
    gw.start()
    try:
        with gw.client() as client:
            assert client.post("/v1/chat/completions", json={
                "model": "fake-gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
        new, old = recent(gw, 2)
    finally:
        gw.stop()
    assert (old["request_id"], old["tokens_in"], old["cache_read_tokens"], old["kind"]) == ("old-request", 10, 0,
                                                                                           "model")
    assert (new["cache_read_tokens"], new["reasoning_tokens"]) == (800, 300)
