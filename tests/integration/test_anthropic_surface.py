"""The rest of what Anthropic's clients call, and what the dialect says about what it left out:
``GET /v1/models`` in Anthropic's shape (with the official SDK's pagination), and the one debug
line per translated request naming the fields the upstream never saw."""

from __future__ import annotations

import json
from collections.abc import Callable

import anthropic
import httpx

from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

ALIASES = """
model_aliases:
  fast: fake:fake-gpt-4o-mini
  smart: fake:fake-gpt-4o
"""


def test_models_in_anthropic_shape_page_by_page(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake).replace("model_aliases:\n  fast: fake:fake-gpt-4o-mini\n", ALIASES))
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0)
    everything = [m.id for m in client.models.list(limit=1000)]
    openai_shape = httpx.get(gateway.base_url + "/v1/models", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert everything == [m["id"] for m in openai_shape.json()["data"]]  # the same models, in Anthropic's shape
    assert {"fast", "smart", "fake:fake-gpt-4o"} <= set(everything)
    first = client.models.list(limit=2)
    assert [m.id for m in first.data] == everything[:2] and first.has_more is True
    assert first.first_id == everything[0] and first.last_id == everything[1]
    assert [m.id for m in client.models.list(limit=2)] == everything  # the SDK follows after_id to the end
    model = first.data[0]
    assert model.type == "model" and model.display_name == model.id and model.created_at.year >= 2026
    before = client.models.list(limit=1, before_id=everything[2])
    assert [m.id for m in before.data] == [everything[1]] and before.has_more is True
    bad = httpx.get(gateway.base_url + "/v1/models", params={"limit": 0},
                    headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert bad.status_code == 400 and bad.json()["type"] == "error"  # an Anthropic client's error, in its shape
    assert bad.json()["error"]["type"] == "invalid_request_error"
    denied = httpx.get(gateway.base_url + "/v1/models", headers={"x-api-key": "sk-wrong-0000000",
                                                                  "anthropic-version": "2023-06-01"})
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"


def test_one_debug_line_names_what_the_translation_left_out(start_gateway: Callable[..., Gateway],
                                                            fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake), env={"GATEWAY_LOG_LEVEL": "debug"})
    body = {"model": "fast", "max_tokens": 50, "top_k": 5, "context_management": {"edits": []},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "adaptive", "display": "omitted"},
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "system", "content": "Reply in French.", "output_config": {"effort": "low"}}]}
    answer = httpx.post(gateway.base_url + "/v1/messages", headers={"x-api-key": CLIENT_KEY,
                                                                    "x-request-id": "dropped-1"}, json=body)
    assert answer.status_code == 200, answer.text
    assert fake.requests[-1].json["messages"][2] == {"role": "system", "content": "Reply in French."}
    lines = [json.loads(line) for line in gateway.logs().splitlines() if '"gateway.translate"' in line]
    assert len(lines) == 1, lines
    message = lines[0]["msg"]
    assert "dropped-1" in message and "'fake'" in message
    for name in ("cache_control", "top_k", "context_management", "thinking.display", "messages[].output_config"):
        assert name in message, message
