"""``BUDGET_PROFILE`` in ``.env``: the budget of every client without one of its own, applied live.

test is $1 a day ($10 a month), prod $50 a day ($1000 a month), unlimited (or unset) none. A client
with its own ``budget`` keeps it; ``budget: {unlimited: true}`` has none whatever the profile; the
master key never has one. The fake upstream's price makes one request cost more than a dollar.
"""

from __future__ import annotations

import textwrap
import time

from tests.conftest import MASTER_KEY
from tests.fake_upstream import FakeUpstream

PLAIN, OWN, FREE = "sk-plain-client-key-1111111", "sk-own-budget-key-22222222", "sk-unlimited-key-333333333"


def config(fake: FakeUpstream) -> str:
    return textwrap.dedent(f"""
    server: {{listen: "127.0.0.1:2906"}}
    llm_providers:
      - id: dear
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models: [m]
        pricing: {{input_token_cost: 200, output_token_cost: 200}}
    api_keys:
      - {{id: plain, key: {PLAIN}}}
      - {{id: own, key: {OWN}, budget: {{daily_usd: 100000}}}}
      - {{id: free, key: {FREE}, budget: {{unlimited: true}}}}
    """)


def chat(gw, key: str) -> tuple[int, str | None]:
    with gw.client(key) as client:
        answer = client.post("/v1/chat/completions", json={"model": "dear:m", "messages": [
            {"role": "user", "content": "hello there"}]})
    return answer.status_code, answer.json().get("error", {}).get("code") if answer.status_code != 200 else None


def set_profile(gw, value: str) -> None:
    version = gw.readiness()["config"]["version"]
    lines = [line for line in gw.env_path.read_text().splitlines() if not line.startswith("BUDGET_PROFILE=")]
    gw.env_path.write_text("\n".join([*lines, f"BUDGET_PROFILE={value}"]) + "\n")
    gw.wait_for_version_change(version)


def test_the_profile_budgets_clients_without_their_own_and_changes_live(start_gateway, fake):
    gw = start_gateway(config(fake))
    gw.stop()  # started again with the profile in .env from the first request on
    gw.env_path.write_text(gw.env_path.read_text() + "BUDGET_PROFILE=test\n")
    gw.start()
    assert chat(gw, PLAIN) == (200, None)  # costs more than the test profile's $1 a day
    assert chat(gw, PLAIN) == (429, "budget_exceeded")
    for key in (OWN, FREE, MASTER_KEY):
        assert chat(gw, key) == (200, None) and chat(gw, key) == (200, None)
    with gw.client(MASTER_KEY) as admin:
        view = admin.get("/admin/v1/clients/plain").json()
        assert view["effective_budget"] == {"daily_usd": 1.0, "monthly_usd": 10.0, "unlimited": False,
                                            "source": "profile:test"}
        assert admin.get("/admin/v1/clients/own").json()["effective_budget"]["source"] == "client"

    set_profile(gw, "unlimited")
    assert chat(gw, PLAIN) == (200, None)
    set_profile(gw, "prod")  # $50 a day: the spend so far is under it
    assert chat(gw, PLAIN) == (200, None)


def test_a_client_created_through_the_admin_api_gets_the_profile_too(start_gateway, fake):
    gw = start_gateway(config(fake))
    set_profile(gw, "test")
    with gw.client(MASTER_KEY) as admin:
        created = admin.post("/admin/v1/clients", json={"client_id": "made", "api_key": "sk-made-at-runtime-4444"})
        assert created.status_code == 201, created.text
        assert created.json()["client"]["effective_budget"]["source"] == "profile:test"
    assert chat(gw, "sk-made-at-runtime-4444") == (200, None)
    assert chat(gw, "sk-made-at-runtime-4444") == (429, "budget_exceeded")


def test_an_unknown_profile_is_refused_and_the_last_good_config_keeps_serving(start_gateway, fake):
    gw = start_gateway(config(fake))
    set_profile(gw, "test")
    version = gw.readiness()["config"]["version"]
    gw.env_path.write_text(gw.env_path.read_text().replace("BUDGET_PROFILE=test", "BUDGET_PROFILE=generous"))
    for _ in range(100):
        details = gw.readiness()
        if details["last_reload"]["result"] == "error":
            break
        time.sleep(0.05)
    assert "BUDGET_PROFILE (environment or .env): must be one of test, prod, unlimited" in \
        details["last_reload"]["error"]
    assert details["config"]["version"] == version
    assert chat(gw, PLAIN) == (200, None) and chat(gw, PLAIN) == (429, "budget_exceeded")
