"""One request cannot starve everyone; budgets count requests in flight.

Over HTTP to the real gateway and the fake upstream. One gateway serves every test here, each
through its own provider or client, so one test's windows and spend cannot leak into another's.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
WINDOW_TPM = 10_000
# $1 per output token, input free: an answer of two words costs exactly $2
PAID = {"input_token_cost": 0.0, "output_token_cost": 1000.0}
CLIENTS = {  # id -> fields
    "other-1": {}, "other-2": {}, "other-3": {},
    "budget-1": {"budget": {"daily_usd": 1}},
    "budget-1-no-max": {"budget": {"daily_usd": 1}},
    "budget-settle": {"budget": {"daily_usd": 10}},
    "budget-failed": {"budget": {"daily_usd": 10}},
    "budget-gone": {"budget": {"daily_usd": 10}},
    "budget-dearest": {"budget": {"daily_usd": 10}},
    "tpm-client": {"limits": {"tokens_per_min": 1000}},
}


def key_of(client_id: str) -> str:
    return f"sk-test-{client_id}-0123456789"


def provider(pid: str, fake: FakeUpstream, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "type": "openai-compatible", "base_url": fake.base_url,
            "api_keys": [f"sk-{pid}-upstream-key-xxxxxxxx"], "models": ["m"], **fields}


@pytest.fixture(scope="module")
def fair_gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream) -> Iterator[Gateway]:
    fake = fake_server
    config = {
        "server": {"listen": "127.0.0.1:2906", "request_timeout_s": 10, "connect_timeout_s": 2},
        "llm_providers": [
            provider("win", fake, limits={"tokens_per_min": WINDOW_TPM}),
            provider("win-full", fake, limits={"tokens_per_min": WINDOW_TPM}),
            provider("paid", fake, pricing=PAID),
            provider("cheap", fake, pricing={"input_token_cost": 0.0, "output_token_cost": 1.0}),
        ],
        "model_aliases": {"cheap-then-paid": {"strategy": "fallback", "targets": ["cheap:m", "paid:m"]}},
        "api_keys": [{"id": "app", "key": CLIENT_KEY},
                     *({"id": cid, "key": key_of(cid), **fields} for cid, fields in CLIENTS.items())],
    }
    gateway = Gateway(tmp_path_factory.mktemp("gw-fair"), yaml.safe_dump(config, sort_keys=False)).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def gw(fair_gateway: Gateway, fake: FakeUpstream) -> Gateway:
    if fair_gateway.proc is None or fair_gateway.proc.poll() is not None:
        pytest.fail(f"the gateway is not running; its log:\n{fair_gateway.logs()[-3000:]}")
    return fair_gateway


def chat(gw: Gateway, client_id: str, model: str, **body: Any) -> httpx.Response:
    with gw.client(key_of(client_id) if client_id != "app" else CLIENT_KEY) as client:
        return client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, **body})


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        result["response"] = call()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def spent(gw: Gateway, client_id: str) -> float:
    text = httpx.get(gw.base_url + "/metrics", timeout=10, headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "gateway_client_cost_total" and sample.labels.get("client_id") == client_id)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# ------------------------------------------------------------------ a provider key's window
def test_a_huge_max_tokens_request_leaves_the_key_to_other_clients(gw: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(delay_s=2.0))  # the huge request is answered slowly; the others at once
    huge, result = in_background(lambda: chat(gw, "app", "win:m", max_tokens=1_000_000))
    wait_for(lambda: fake.in_flight == 1)
    others = [chat(gw, f"other-{i}", "win:m", max_tokens=500) for i in (1, 2, 3)]
    assert [r.status_code for r in others] == [200, 200, 200], [r.text for r in others]
    huge.join(15)
    assert result["response"].status_code == 200
    # settled with its real usage (a few tokens): a request of most of the window fits again
    assert chat(gw, "other-1", "win:m", max_tokens=WINDOW_TPM // 5).status_code == 200


def test_huge_requests_in_flight_still_count_against_the_key(gw: Gateway, fake: FakeUpstream) -> None:
    """Capped, not ignored: four of them (a quarter of the window each) fill the key while they run."""
    fake.script(*[Behaviour(delay_s=2.0)] * 4)
    threads = [in_background(lambda: chat(gw, "app", "win-full:m", max_tokens=1_000_000)) for _ in range(4)]
    wait_for(lambda: fake.in_flight == 4)
    refused = chat(gw, "other-2", "win-full:m", max_tokens=10)
    assert refused.status_code == 429
    assert error_code(refused) == "all_keys_rate_limited"
    for thread, result in threads:
        thread.join(15)
        assert result["response"].status_code == 200
    assert chat(gw, "other-2", "win-full:m", max_tokens=10).status_code == 200


# -------------------------------------------------------------------------------- budgets
def stream_status(gw: Gateway, client_id: str, body: dict[str, Any], start: threading.Barrier) -> tuple[int, str]:
    with gw.client(key_of(client_id)) as client:
        start.wait(10)
        with client.stream("POST", "/v1/chat/completions",
                           json={"model": "paid:m", "messages": MESSAGES, "stream": True, **body}) as r:
            r.read()
            code = "" if r.status_code == 200 else json.loads(r.content)["error"]["code"]
            return r.status_code, code


@pytest.mark.parametrize("client_id, body", [
    ("budget-1", {"max_tokens": 2}),
    ("budget-1-no-max", {}),  # held at the default output estimate
])
def test_concurrent_streams_cannot_overspend_a_budget(gw: Gateway, fake: FakeUpstream, client_id: str,
                                                      body: dict[str, Any]) -> None:
    """50 streams of $2 each at once against $1 a day: one is admitted, $2 is charged."""
    fake.set_default(Behaviour(text="two words", chunks=2, chunk_delay_s=0.5))
    start = threading.Barrier(50)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one() -> None:
        outcome = stream_status(gw, client_id, body, start)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 50
    assert results.count((200, "")) == 1, results
    assert results.count((429, "budget_exceeded")) == 49, results
    assert fake.count() == 1
    assert spent(gw, client_id) == pytest.approx(2.0)


def test_the_hold_is_settled_to_the_real_cost(gw: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text="two words"))
    fake.script(Behaviour(text="two words", delay_s=1.5))
    first, result = in_background(lambda: chat(gw, "budget-settle", "paid:m", max_tokens=100))
    wait_for(lambda: fake.in_flight == 1)
    held = chat(gw, "budget-settle", "paid:m", max_tokens=2)  # $100 held of $10: refused while it runs
    assert held.status_code == 429
    assert error_code(held) == "budget_exceeded"
    assert "in flight" in held.json()["error"]["message"]
    assert held.headers["retry-after"] == "1"  # not tomorrow: the request in flight ends soon
    first.join(15)
    assert result["response"].status_code == 200
    assert spent(gw, "budget-settle") == pytest.approx(2.0)  # the real cost, not the $100 held
    assert chat(gw, "budget-settle", "paid:m", max_tokens=2).status_code == 200
    assert spent(gw, "budget-settle") == pytest.approx(4.0)


def test_a_failed_request_releases_its_hold_and_costs_nothing(gw: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(status=500))
    failed = chat(gw, "budget-failed", "paid:m", max_tokens=100)
    assert failed.status_code == 502
    fake.script(Behaviour(text="two words"))
    assert chat(gw, "budget-failed", "paid:m", max_tokens=100).status_code == 200
    assert spent(gw, "budget-failed") == pytest.approx(2.0)


def test_a_client_leaving_mid_stream_releases_its_hold(gw: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text=" ".join(["w"] * 40), chunks=40, chunk_delay_s=0.1))
    body = json.dumps({"model": "paid:m", "messages": MESSAGES, "stream": True, "max_tokens": 1000}).encode()
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {key_of('budget-gone')}\r\n".encode()
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"data:" not in received:
            received += sock.recv(65536)
    assert fake.wait_for_disconnects(1, timeout=5.0)
    fake.set_default(Behaviour(text="two words"))
    # the $1000 held for the stream is gone; what it streamed before the client left is charged
    wait_for(lambda: chat(gw, "budget-gone", "paid:m", max_tokens=2).status_code == 200, timeout=5)
    assert 2.0 <= spent(gw, "budget-gone") < 10.0


def test_the_hold_covers_the_dearest_target_a_request_may_reach(gw: Gateway, fake: FakeUpstream) -> None:
    """An alias that may fail over to a dear target holds at the dear price ($1 per token here)."""
    fake.script(Behaviour(text="two words", delay_s=1.5))
    first, result = in_background(lambda: chat(gw, "budget-dearest", "cheap-then-paid", max_tokens=20))
    wait_for(lambda: fake.in_flight == 1)
    refused = chat(gw, "budget-dearest", "cheap-then-paid", max_tokens=2)  # $20 held of $10
    assert (refused.status_code, error_code(refused)) == (429, "budget_exceeded")
    first.join(15)
    assert result["response"].status_code == 200
    assert spent(gw, "budget-dearest") == pytest.approx(0.002)  # served by the cheap target


# ---------------------------------------------------------------------- the client's own window
def test_a_client_request_bigger_than_its_token_limit_is_served_and_settled(gw: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(delay_s=1.5))
    first, result = in_background(lambda: chat(gw, "tpm-client", "paid:m", max_tokens=1_000_000))
    wait_for(lambda: fake.in_flight == 1)
    refused = chat(gw, "tpm-client", "paid:m", max_tokens=10)  # its own window is full while it runs
    assert (refused.status_code, error_code(refused)) == (429, "rate_limit_exceeded")
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    first.join(15)
    served = result["response"]
    assert served.status_code == 200
    assert served.headers["x-ratelimit-limit-tokens"] == "1000"
    after = chat(gw, "tpm-client", "paid:m", max_tokens=10)
    assert after.status_code == 200
    real = served.json()["usage"]["total_tokens"]
    # settled: the window holds the first one's real usage (and the second one's small estimate)
    assert 1000 - real - 30 <= int(after.headers["x-ratelimit-remaining-tokens"]) < 1000 - real
