"""Per-model pricing: a provider listing several models prices each one, and cost, budget holds and spend
follow the model that served the request."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.snapshot import build_snapshot
from gateway.core.pricing import DEFAULT_OUTPUT_TOKENS
from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

CHEAP = {"input_token_cost": 0.5, "output_token_cost": 1.0}
DEAR = {"input_token_cost": 30.0, "output_token_cost": 60.0}  # the provider's default price


def pricing_config(fake: FakeUpstream, budget: str = "") -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 10
    llm_providers:
      - id: listed
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models:
          - fake-gpt-4o
          - {{name: fake-gpt-4o-mini, pricing: {{input_token_cost: 0.5, output_token_cost: 1.0}}}}
        pricing: {{input_token_cost: 30.0, output_token_cost: 60.0}}
      - id: mapped
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-two-222222"]
        models: [fake-gpt-4o, fake-gpt-4o-mini]
        pricing:
          input_token_cost: 30.0
          output_token_cost: 60.0
          fake-gpt-4o-mini: {{input_token_cost: 0.5, output_token_cost: 1.0}}
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        {budget}
    """)


def cost(price: dict[str, float], usage: Any) -> float:
    tokens_in, tokens_out = usage.prompt_tokens, usage.completion_tokens
    return (tokens_in * price["input_token_cost"] + tokens_out * price["output_token_cost"]) / 1000


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


@pytest.mark.parametrize("provider", ["listed", "mapped"])
def test_two_models_of_one_provider_cost_their_own_price(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                         provider: str) -> None:
    gateway = start_gateway(pricing_config(fake))
    client = sdk(gateway)
    cheap = client.chat.completions.create(model=f"{provider}:fake-gpt-4o-mini",
                                           messages=[{"role": "user", "content": "one two three"}])
    dear = client.chat.completions.create(model=f"{provider}:fake-gpt-4o",
                                          messages=[{"role": "user", "content": "one two three"}])
    text = gateway.metrics()
    spent_cheap = metric(text, "gateway_cost_usd_total", provider=provider, model="fake-gpt-4o-mini")
    spent_dear = metric(text, "gateway_cost_usd_total", provider=provider, model="fake-gpt-4o")
    assert spent_cheap == pytest.approx(cost(CHEAP, cheap.usage))
    assert spent_dear == pytest.approx(cost(DEAR, dear.usage))
    assert spent_dear == pytest.approx(spent_cheap * 60)  # same usage, each model's own price
    assert metric(text, "gateway_client_cost_total", client_id="app") == pytest.approx(spent_cheap + spent_dear)


def _in_flight(gateway: Gateway, model: str) -> threading.Thread:
    """A request for ``model`` that the (delayed) upstream keeps in flight for a while."""

    def run() -> None:
        with gateway.client() as client:
            client.post("/v1/chat/completions", json={"model": model, "max_tokens": 1000,
                                                      "messages": [{"role": "user", "content": "slow"}]})

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_in_flight(fake: FakeUpstream) -> None:
    deadline = time.monotonic() + 10
    while fake.in_flight < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.in_flight >= 1


@pytest.mark.parametrize(("model", "status"), [("listed:fake-gpt-4o", 429), ("listed:fake-gpt-4o-mini", 200)])
def test_the_budget_hold_uses_the_models_price(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                               model: str, status: int) -> None:
    # 1000 output tokens held: about $60 at the default price, about $1 at the cheap model's: a $10 budget
    # is held up by the dear request in flight only
    gateway = start_gateway(pricing_config(fake, budget="budget: {daily_usd: 10}"))
    fake.script(Behaviour(delay_s=3.0))
    thread = _in_flight(gateway, model)
    try:
        _wait_in_flight(fake)
        with gateway.client() as client:
            second = client.post("/v1/chat/completions", json={
                "model": "listed:fake-gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        assert second.status_code == status, second.text
        if status == 429:
            assert second.json()["error"]["code"] == "budget_exceeded"
    finally:
        thread.join(30)


def test_the_default_output_hold_is_what_the_anthropic_default_max_tokens_is() -> None:
    from gateway.providers.anthropic.request import DEFAULT_MAX_TOKENS

    assert DEFAULT_OUTPUT_TOKENS == DEFAULT_MAX_TOKENS  # the hold covers what an Anthropic answer may use


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_snapshot(parse_config(textwrap.dedent(text).encode(), "c.yaml", {}), "c.yaml")
    return [issue.render("c.yaml") for issue in info.value.issues]


def test_pricing_errors_name_file_line_and_path() -> None:
    found = errors("""
    llm_providers:
      - id: a
        type: openai
        api_keys: [k]
        models:
          - gpt-4o
          - {name: gpt-4o-mini, pricing: {input_token_cost: -1}}
          - {pricing: {input_token_cost: 1}}
        pricing:
          input_token_cost: 1
          gpt-4o: {output_token_cost: x}
          input_cost: 2
    """)
    assert sorted(found) == sorted([
        "c.yaml:8: llm_providers[0].models[1].pricing.input_token_cost: Input should be greater than or equal to 0",
        "c.yaml:9: llm_providers[0].models[2].name: Field required",
        "c.yaml:12: llm_providers[0].pricing.gpt-4o.output_token_cost: Input should be a valid number, unable to "
        "parse string as a number",
        "c.yaml:13: llm_providers[0].pricing.input_cost: unknown field",
    ])


def test_a_model_priced_twice_is_an_error_and_a_price_for_an_unlisted_model_a_warning() -> None:
    found = errors("""
    llm_providers:
      - id: a
        type: openai
        api_keys: [k]
        models: [{name: gpt-4o, pricing: {input_token_cost: 1}}]
        pricing:
          gpt-4o: {input_token_cost: 2}
    """)
    assert found == ["c.yaml:8: llm_providers[0].pricing.gpt-4o: model 'gpt-4o' is priced twice (here and in 'models')"]
    snap = build_snapshot(parse_config(textwrap.dedent("""
    llm_providers:
      - id: a
        type: openai
        api_keys: [k]
        models: [gpt-4o]
        pricing: {gpt-4o-mini: {input_token_cost: 2}}
    """).encode(), "c.yaml", {}), "c.yaml")
    assert any("pricing names model 'gpt-4o-mini'" in w for w in snap.warnings)
    assert snap.providers["a"].price_of("gpt-4o-mini").input_token_cost == 2
    assert snap.providers["a"].price_of("gpt-4o").input_token_cost == 0


def test_a_live_reload_changes_a_models_price(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gateway = start_gateway(pricing_config(fake))
    old = gateway.readiness()["config"]["version"]
    gateway.write_config(pricing_config(fake).replace("{input_token_cost: 0.5, output_token_cost: 1.0}",
                                                      "{input_token_cost: 5.0, output_token_cost: 10.0}"))
    gateway.wait_for_version_change(old)
    answer = sdk(gateway).chat.completions.create(model="listed:fake-gpt-4o-mini",
                                                  messages=[{"role": "user", "content": "hi"}])
    spent = metric(gateway.metrics(), "gateway_cost_usd_total", provider="listed", model="fake-gpt-4o-mini")
    assert spent == pytest.approx(cost({"input_token_cost": 5.0, "output_token_cost": 10.0}, answer.usage))
    assert httpx.get(gateway.base_url + "/health").status_code == 200
