"""Routing and resilience over real HTTP against fake upstreams (DESIGN §6).

Per-key limits and cooldowns, upstream 429 headers, headroom, quarantine, failover across
keys and targets within ``max_attempts``, the circuit breaker, queueing, streams, strategies,
client limits and budgets. Windows are shortened with ``routing.limit_window_s`` so nothing
waits for a real minute.

Most tests share one gateway (``shared``), each through its own provider, model names or
client, so one test's key and target state cannot leak into another's and the file does not
pay a gateway start per test. Tests that need other ``routing`` settings use their own.
"""

from __future__ import annotations

import email.utils
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]


# ---------------------------------------------------------------------------------- helpers
def keys_for(provider_id: str, n: int) -> list[str]:
    return [f"sk-{provider_id}-upstream-key-{i}-{'x' * 8}" for i in range(1, n + 1)]


def provider(pid: str, server: FakeUpstream | str, keys: list[str], **fields: Any) -> dict[str, Any]:
    base_url = server if isinstance(server, str) else server.base_url
    return {"id": pid, "type": "openai-compatible", "base_url": base_url, "api_keys": keys,
            "models": ["m"], **fields}


def make_config(providers: list[dict[str, Any]], routing: dict[str, Any] | None = None,
                aliases: dict[str, Any] | None = None) -> str:
    config = {
        "server": {"listen": "127.0.0.1:2906", "request_timeout_s": 5, "connect_timeout_s": 2},
        "routing": routing or {},
        "llm_providers": providers,
        "model_aliases": aliases or {},
        "api_keys": [{"id": "app", "key": CLIENT_KEY}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def chat(client: httpx.Client, model: str, **body: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, **body})


def answer_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def stream_events(client: httpx.Client, model: str, **body: Any) -> tuple[int, list[str]]:
    """(status, the data payloads of every SSE event) of one streamed request."""
    with client.stream("POST", "/v1/chat/completions",
                       json={"model": model, "messages": MESSAGES, "stream": True, **body}) as r:
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    return r.status_code, events


def streamed_text(events: list[str]) -> str:
    parts = []
    for event in events:
        if event != "[DONE]":
            for choice in json.loads(event).get("choices") or ():
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    text = gw.metrics()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def log_entries(gw: Gateway) -> Iterator[dict[str, Any]]:
    for line in gw.logs().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def sent_for(server: FakeUpstream, model: str) -> int:
    """Chat requests the fake received for upstream ``model``."""
    return sum(1 for r in server.requests if isinstance(r.json, dict) and r.json.get("model") == model)


# ----------------------------------------------------------------------- the shared gateway
SHARED_ROUTING = {"limit_window_s": 3, "cooldown_s": 2}
SHARED_CLIENTS: dict[str, tuple[str, dict[str, Any]]] = {  # client id -> (key, fields)
    "rpm": ("sk-test-client-rpm-0123456789", {"limits": {"req_per_min": 2}}),
    "tpm": ("sk-test-client-tpm-0123456789", {"limits": {"tokens_per_min": 50}}),
    "spend-whole": ("sk-test-client-spend-whole-01", {"budget": {"daily_usd": 0.001}}),
    "spend-stream": ("sk-test-client-spend-stream-1", {"budget": {"daily_usd": 0.001}}),
    "spend-local": ("sk-test-client-spend-local-01", {"budget": {"daily_usd": 0.001}}),
}
CooldownCase = tuple[Callable[[], dict[str, str]], dict[str, Any], float, float]
COOLDOWN_CASES: dict[str, CooldownCase] = {
    # case: (429 headers, provider fields, least and most cooldown the key should get)
    "retry_after_seconds": (lambda: {"Retry-After": "2"}, {"cooldown_s": 60}, 2.0, 2.0),
    "retry_after_http_date": (lambda: {"Retry-After": email.utils.formatdate(math.ceil(time.time()) + 2, usegmt=True)},
                              {"cooldown_s": 60}, 2.0, 3.0),  # whole seconds: 2 to 3 s from now
    "reset_requests_header": (lambda: {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
                              {"cooldown_s": 60}, 2.0, 2.0),
    "provider_cooldown_s": (lambda: {}, {"cooldown_s": 1.5}, 1.5, 1.5),  # shorter than the routing one
    "routing_cooldown_s": (lambda: {}, {}, 2.0, 2.0),  # SHARED_ROUTING["cooldown_s"]
}
STRATEGY_ALIASES = {
    "fb": {"strategy": "fallback", "targets": ["a:fb", "b:fb"]},
    "rr": {"strategy": "round_robin", "targets": ["a:rr", "b:rr"]},
    "wt": {"strategy": "weighted", "targets": ["a:wt", "b:wt"], "weights": [1, 0.0001]},
    "lb": {"strategy": "least_busy", "targets": ["a:lb", "b:lb"]},
    "lat": {"strategy": "latency", "targets": ["a:lat", "b:lat"]},
    "cost": {"strategy": "cost", "targets": ["a:cost", "b:cost"]},
}


@pytest.fixture(scope="module")
def closed_url() -> Iterator[str]:
    """A loopback URL that refuses connections (bound, never listening, so no one else gets it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory, fake_server, fake_server_2, closed_url) -> Iterator[Gateway]:
    fake, fake2 = fake_server, fake_server_2
    providers = [
        provider("lim", fake, keys_for("lim", 3), limits={"req_per_min": 2}),
        *(provider(case, fake, keys_for(case, 2), **spec[1]) for case, spec in COOLDOWN_CASES.items()),
        provider("head", fake, keys_for("head", 2)),
        provider("q401", fake, keys_for("q401", 2)),
        provider("q403", fake, keys_for("q403", 2)),
        provider("fa", fake, keys_for("fa", 2), timeout_s=0.5),
        provider("dead", closed_url, keys_for("dead", 1)),
        provider("fb", fake2, keys_for("fb", 1)),
        provider("cool", fake, keys_for("cool", 2)),
        provider("cut", fake, keys_for("cut", 2)),
        provider("again", fake, keys_for("again", 3)),
        provider("a", fake, keys_for("a", 1), pricing={"input_token_cost": 0.5, "output_token_cost": 1.5}),
        provider("b", fake2, keys_for("b", 1), pricing={"input_token_cost": 0.01, "output_token_cost": 0.02}),
        provider("paid", fake, keys_for("paid", 1), pricing={"input_token_cost": 1.0, "output_token_cost": 1.0}),
    ]
    aliases = {"chain": {"strategy": "fallback", "targets": ["fa:m", "dead:m", "fb:m"]}, **STRATEGY_ALIASES}
    config = yaml.safe_load(make_config(providers, SHARED_ROUTING, aliases))
    config["api_keys"] += [{"id": cid, "key": key, **fields} for cid, (key, fields) in SHARED_CLIENTS.items()]
    gateway = Gateway(tmp_path_factory.mktemp("gw-routing"), yaml.safe_dump(config, sort_keys=False)).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def shared(shared_gateway, fake, fake2) -> Gateway:
    """The shared gateway, with both fakes reset (by their fixtures) for this test."""
    if shared_gateway.proc is None or shared_gateway.proc.poll() is not None:
        pytest.fail(f"the shared gateway is not running; its log:\n{shared_gateway.logs()[-3000:]}")
    return shared_gateway


# ------------------------------------------------------------------ 1. per-key limits
def test_key_limits_spread_requests_then_429_then_recover(shared, fake):
    keys = keys_for("lim", 3)
    with shared.client() as client:
        for _ in range(6):
            assert chat(client, "lim:m").status_code == 200
        assert [fake.count(k) for k in keys] == [2, 2, 2]
        refused = chat(client, "lim:m")
        assert refused.status_code == 429
        assert error_of(refused)["code"] == "all_keys_rate_limited"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 4
        assert fake.count() == 6  # skipped before sending, not sent and refused
        time.sleep(retry_after)
        assert chat(client, "lim:m").status_code == 200
    assert fake.count() == 7


# --------------------------------------------------------------- 2. upstream 429 handling
@pytest.mark.parametrize("case", list(COOLDOWN_CASES))
def test_upstream_429_cools_the_key_for_the_advertised_time(shared, fake, case):
    headers, _, least, most = COOLDOWN_CASES[case]
    k1, k2 = keys_for(case, 2)
    model = case + ":m"
    fake.script(Behaviour(status=429, headers=headers()), key=k1)
    with shared.client() as client:
        assert chat(client, model).status_code == 200  # k1 (first in turn) 429s, k2 answers at once
        cooled_at = time.monotonic()
        assert (fake.count(k1), fake.count(k2)) == (1, 1)
        for _ in range(3):
            assert chat(client, model).status_code == 200
        assert time.monotonic() - cooled_at < least - 0.3, "too slow to prove anything"
        assert (fake.count(k1), fake.count(k2)) == (1, 4)  # k1 not used while cooling
        time.sleep(max(0.0, cooled_at + most + 0.2 - time.monotonic()))
        for _ in range(2):
            assert chat(client, model).status_code == 200
    assert fake.count(k1) == 2  # back in turn after its cooldown
    assert metric(shared, "gateway_key_cooldowns_total", provider=case) == 1


# ------------------------------------------------------------------ 3. headroom headers
def test_remaining_requests_zero_steers_away_until_reset(shared, fake):
    k1, k2 = keys_for("head", 2)
    fake.script(Behaviour(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}),
                key=k1)
    with shared.client() as client:
        assert chat(client, "head:m").status_code == 200
        noted_at = time.monotonic()
        assert fake.count(k1) == 1
        for _ in range(3):
            assert chat(client, "head:m").status_code == 200
        assert (fake.count(k1), fake.count(k2)) == (1, 3)
        time.sleep(max(0.0, noted_at + 2.2 - time.monotonic()))
        for _ in range(2):
            assert chat(client, "head:m").status_code == 200
    assert fake.count(k1) == 2


# ----------------------------------------------------------------------- 4. quarantine
@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_quarantined_and_never_retried(shared, fake, status):
    pid = f"q{status}"
    k1, k2 = keys_for(pid, 2)
    assert metric(shared, "gateway_key_quarantined_total", provider=pid) == 0
    fake.set_default(Behaviour(status=status, body={"error": {"message": f"Incorrect API key provided: {k1}"}}),
                     key=k1)
    with shared.client() as client:
        for _ in range(5):
            response = chat(client, pid + ":m")
            assert response.status_code == 200
            assert k1 not in response.text
    assert (fake.count(k1), fake.count(k2)) == (1, 5)
    assert metric(shared, "gateway_key_quarantined_total", provider=pid) == 1
    quarantined = [e for e in log_entries(shared) if "quarantined" in str(e.get("msg"))
                   and str(e.get("key", "")).startswith(pid + "#")]
    assert [e["key"] for e in quarantined] == [pid + "#1"]
    logs = shared.logs()
    assert k1 not in logs and k2 not in logs


# -------------------------------------------------------------- 5. failover and breaker
def test_5xx_timeout_and_refused_fail_over_to_next_key_then_next_target(shared, fake, fake2):
    a1, a2 = keys_for("fa", 2)
    fake.set_default(Behaviour(status=500, body={"error": {"message": "boom"}}), key=a1)
    fake.set_default(Behaviour(hang=True), key=a2)
    fake2.set_default(Behaviour(text="from fb"))
    with shared.client() as client:
        started = time.monotonic()
        assert answer_text(chat(client, "chain")) == "from fb"
        assert time.monotonic() - started < 4
    assert (fake.count(a1), fake.count(a2), fake2.count()) == (1, 1, 1)
    assert metric(shared, "gateway_upstream_attempts_total", provider="fa", outcome="server_error") == 1
    assert metric(shared, "gateway_upstream_attempts_total", provider="fa", outcome="timeout") == 1
    assert metric(shared, "gateway_upstream_attempts_total", provider="dead", outcome="connect_error") == 1
    assert metric(shared, "gateway_upstream_attempts_total", provider="fb", outcome="ok") == 1


@pytest.fixture(scope="module")
def breaker_gateway(tmp_path_factory, fake_server, fake_server_2) -> Iterator[Gateway]:
    """A gateway with a small attempt budget and a quick circuit breaker."""
    config = make_config(
        [provider("p", fake_server, keys_for("p", 3)),
         provider("ca", fake_server, keys_for("ca", 1)), provider("cb", fake_server_2, keys_for("cb", 1))],
        routing={"max_attempts": 2, "circuit_breaker_failures": 2, "circuit_breaker_open_s": 2},
        aliases={"pair": {"strategy": "fallback", "targets": ["ca:m", "cb:m"]}})
    gateway = Gateway(tmp_path_factory.mktemp("gw-breaker"), config).start()
    yield gateway
    gateway.stop()


def test_max_attempts_bounds_the_retries(breaker_gateway, fake):
    fake.set_default(Behaviour(status=503, body={"error": {"message": "overloaded"}}))
    with breaker_gateway.client() as client:
        response = chat(client, "p:m")
    assert response.status_code == 502
    assert error_of(response)["code"] == "provider_error"
    assert fake.count() == 2  # 3 keys, but only 2 attempts


def test_circuit_breaker_skips_a_failing_key_while_open(breaker_gateway, fake, fake2):
    gw = breaker_gateway
    fake.set_default(Behaviour(status=500))
    with gw.client() as client:
        for _ in range(2):
            assert chat(client, "pair").status_code == 200
        opened_at = time.monotonic()
        assert (fake.count(), fake2.count()) == (2, 2)
        for _ in range(3):
            assert chat(client, "pair").status_code == 200
        assert (fake.count(), fake2.count()) == (2, 5)  # open: ca is not even tried
        alone = chat(client, "ca:m")  # nothing else to try: 503 (not "rate limited") with Retry-After
        assert alone.status_code == 503
        assert error_of(alone)["code"] == "provider_unavailable"
        assert 1 <= int(alone.headers["retry-after"]) <= 2
        assert fake.count() == 2
        time.sleep(max(0.0, opened_at + 2.2 - time.monotonic()))
        assert chat(client, "pair").status_code == 200
        assert fake.count() == 3  # half-open: one probe, which fails and reopens the circuit
        assert chat(client, "pair").status_code == 200
        assert fake.count() == 3
        fake.set_default(None)  # ca recovers
        time.sleep(2.2)
        response = chat(client, "pair")
        assert response.status_code == 200
    assert (fake.count(), fake2.count()) == (4, 7)


# ------------------------------------------------------------ 6. all keys cooling, queue
def test_all_keys_cooling_gives_429_with_the_soonest_retry_after(shared, fake):
    k1, k2 = keys_for("cool", 2)
    fake.script(Behaviour(status=429, headers={"Retry-After": "3"}), key=k1)
    fake.script(Behaviour(status=429, headers={"Retry-After": "1"}), key=k2)
    with shared.client() as client:
        first = chat(client, "cool:m")  # both keys 429 during this very request
        assert first.status_code == 429, first.text
        assert error_of(first)["code"] == "all_keys_rate_limited"
        assert first.headers["retry-after"] == "1"
        assert fake.count() == 2
        again = chat(client, "cool:m")  # nothing can be tried: answered without an upstream call
        assert again.status_code == 429
        assert error_of(again)["code"] == "all_keys_rate_limited"
        assert again.headers["retry-after"] == "1"
        assert fake.count() == 2
        time.sleep(1.1)
        assert chat(client, "cool:m").status_code == 200
    assert (fake.count(k1), fake.count(k2)) == (1, 2)


def test_queue_timeout_waits_for_a_key_to_free_up(start_gateway, fake):
    k1, k2 = keys_for("p", 2)
    q1 = keys_for("q", 1)[0]
    gw = start_gateway(make_config(
        [provider("p", fake, [k1, k2]), provider("q", fake, [q1], limits={"req_per_min": 1})],
        routing={"queue_timeout_s": 3, "limit_window_s": 2}))
    fake.script(Behaviour(status=429, headers={"Retry-After": "1"}), key=k1)
    fake.script(Behaviour(status=429, headers={"Retry-After": "1"}), key=k2)
    with gw.client() as client:
        started = time.monotonic()
        assert chat(client, "p:m").status_code == 200  # both keys 429, then it waits for the soonest
        waited = time.monotonic() - started
        assert 0.9 <= waited < 2.9, waited
        assert fake.count() == 3
        # the same for a key at its own limit: the second request waits for the window
        assert chat(client, "q:m").status_code == 200
        started = time.monotonic()
        assert chat(client, "q:m").status_code == 200
        waited = time.monotonic() - started
        assert 1.5 <= waited < 3.0, waited
    assert fake.count(q1) == 2


# ------------------------------------------------------------------------------ 7. streams
def test_stream_cut_after_first_bytes_is_not_retried(shared, fake):
    fake.script(Behaviour(text="a b c d e f", chunks=6, cut_after=2))
    with shared.client() as client:
        status, events = stream_events(client, "cut:m")
    assert status == 200
    assert len(events) >= 2 and "[DONE]" not in events
    assert json.loads(events[0])["choices"][0]["delta"]["content"]
    assert json.loads(events[-1])["error"]["code"] == "stream_interrupted"
    assert fake.count() == 1


def test_stream_failing_before_first_byte_is_retried(shared, fake):
    fake.set_default(Behaviour(text="all good here", chunks=3))
    with shared.client() as client:
        fake.script(Behaviour(status=429, headers={"Retry-After": "30"}))
        status, events = stream_events(client, "again:m")
        assert status == 200 and events[-1] == "[DONE]"
        assert streamed_text(events) == "all good here"
        assert fake.count() == 2
        fake.script(Behaviour(status=500, body={"error": {"message": "boom"}}))
        status, events = stream_events(client, "again:m")
        assert status == 200 and events[-1] == "[DONE]"
        assert streamed_text(events) == "all good here"
        assert fake.count() == 4
    assert not any("error" in json.loads(e) for e in events if e != "[DONE]")


# --------------------------------------------------------------------------- 8. strategies
@pytest.fixture
def sgw(shared, fake, fake2) -> Gateway:
    """The shared gateway with the two strategy targets telling apart who answered."""
    fake.set_default(Behaviour(text="from-a"))
    fake2.set_default(Behaviour(text="from-b"))
    return shared


def test_fallback_uses_the_first_target_while_healthy(sgw, fake, fake2):
    with sgw.client() as client:
        assert [answer_text(chat(client, "fb")) for _ in range(5)] == ["from-a"] * 5
    assert (sent_for(fake, "fb"), sent_for(fake2, "fb")) == (5, 0)


def test_round_robin_alternates(sgw, fake, fake2):
    with sgw.client() as client:
        order = [answer_text(chat(client, "rr")) for _ in range(6)]
    assert order[0] != order[1]
    assert order == order[:2] * 3


def test_weighted_mostly_picks_the_heavy_target(sgw, fake, fake2):
    with sgw.client() as client:
        answers = [answer_text(chat(client, "wt")) for _ in range(40)]
    assert answers.count("from-a") >= 36


def test_least_busy_avoids_the_target_with_a_request_in_flight(sgw, fake, fake2):
    fake.set_default(Behaviour(text="from-a", delay_s=1.5))
    results: list[str] = []
    with sgw.client() as client:
        slow = threading.Thread(target=lambda: results.append(answer_text(chat(client, "lb"))))
        slow.start()
        deadline = time.monotonic() + 5
        while fake.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.in_flight == 1
        assert answer_text(chat(client, "lb")) == "from-b"
        slow.join(10)
        assert results == ["from-a"]
        fake.set_default(Behaviour(text="from-a"))
        assert answer_text(chat(client, "lb")) == "from-a"  # nothing in flight: a tie, first wins
    assert (sent_for(fake, "lb"), sent_for(fake2, "lb")) == (2, 1)


def test_latency_prefers_the_faster_target(sgw, fake, fake2):
    fake.set_default(Behaviour(text="from-a", delay_s=0.3))
    with sgw.client() as client:
        answers = [answer_text(chat(client, "lat")) for _ in range(6)]
    assert answers[-4:] == ["from-b"] * 4
    assert sent_for(fake, "lat") <= 2


def test_cost_picks_the_cheaper_provider(sgw, fake, fake2):
    with sgw.client() as client:
        assert [answer_text(chat(client, "cost")) for _ in range(4)] == ["from-b"] * 4
    assert sent_for(fake, "cost") == 0


# ------------------------------------------------------------------------ 9. client limits
def test_client_request_limit_gives_429_with_ratelimit_headers(shared, fake):
    with shared.client(SHARED_CLIENTS["rpm"][0]) as client:
        first, second = chat(client, "paid:m"), chat(client, "paid:m")
        assert (first.status_code, second.status_code) == (200, 200)
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        refused = chat(client, "paid:m")
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 3
    h = refused.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert h["x-ratelimit-reset-requests"].endswith("s")
    assert 1 <= int(h["x-ratelimit-reset-requests"][:-1]) <= 3
    assert (h["x-ratelimit-limit"], h["x-ratelimit-remaining"]) == ("2", "0")
    assert 1 <= int(h["x-ratelimit-reset"]) <= 3
    assert fake.count() == 2


def test_client_token_limit_counts_the_real_usage(shared, fake):
    # the estimate before the call is about 7 tokens; the real answer uses 4 + 60 = 64 (limit 50)
    fake.set_default(Behaviour(text=" ".join(["word"] * 60)))
    with shared.client(SHARED_CLIENTS["tpm"][0]) as client:
        first = chat(client, "paid:m")
        assert first.status_code == 200
        assert first.json()["usage"]["total_tokens"] == 64
        refused = chat(client, "paid:m")
        assert refused.status_code == 429
        assert error_of(refused)["code"] == "rate_limit_exceeded"
        assert "tokens" in error_of(refused)["message"]
        assert refused.headers["x-ratelimit-limit-tokens"] == "50"
        assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 3
        time.sleep(retry_after + 0.1)
        assert chat(client, "paid:m").status_code == 200
    assert fake.count() == 2


# ------------------------------------------------------------------------------ 10. budgets
@pytest.mark.parametrize("client_id", ["spend-whole", "spend-stream", "spend-local"])
def test_budget_is_charged_with_real_usage(shared, fake, client_id):
    """Whole answer; streamed with the upstream's usage chunk; streamed without usage (counted locally)."""
    fake.set_default(Behaviour(text="five words in this answer", usage=client_id != "spend-local"))
    with shared.client(SHARED_CLIENTS[client_id][0]) as client:
        if client_id == "spend-whole":
            assert chat(client, "paid:m").status_code == 200
        else:
            status, events = stream_events(client, "paid:m")
            assert status == 200 and events[-1] == "[DONE]"
            assert streamed_text(events) == "five words in this answer"
        refused = chat(client, "paid:m")
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "budget_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert fake.count() == 1
    assert metric(shared, "gateway_client_cost_total", client_id=client_id) > 0.001


def test_a_request_refused_on_two_keys_quarantines_only_one(start_gateway, fake):
    """A 403 that is about the request (content, model access), not the key, must not burn the pool."""
    gw = start_gateway(f"""
    llm_providers:
      - {{id: strict, type: openai-compatible, base_url: "{fake.base_url}", models: [m],
          api_keys: [sk-strict-one-1111111, sk-strict-two-2222222, sk-strict-three-333333]}}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}}}
    """)
    fake.script(Behaviour(status=403, body={"error": {"message": "flagged input"}}),
                Behaviour(status=403, body={"error": {"message": "flagged input"}}))
    with gw.client() as client:
        refused = client.post("/v1/chat/completions",
                              json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert refused.status_code == 403
        assert fake.count() == 2
        # one key rests; the other two still serve
        answers = [client.post("/v1/chat/completions",
                               json={"model": "m", "messages": [{"role": "user", "content": "x"}]}).status_code
                   for _ in range(4)]
    assert answers == [200] * 4
    assert len({r.api_key for r in fake.requests[2:]}) == 2
