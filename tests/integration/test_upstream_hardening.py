"""Upstream values are bounded, answers are never sent twice, alias fallback on one key.

Everything goes through the running gateway to the fake upstream, which misbehaves on purpose:
absurd ``Retry-After`` values, a body that breaks after ``200``, hanging, 100 MB answers,
compression nobody asked for, a whole JSON answer to a stream request, a 304. The fake counts
what it received, so "not sent again" is counted where it would be billed.

Most tests share one gateway (``shared``), each through its own provider, so one test's key state
cannot leak into another's; the ``routing.total_timeout_s`` test has its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream
from tests.integration.test_routing import (
    answer_text,
    chat,
    error_of,
    keys_for,
    make_config,
    metric,
    provider,
    sent_for,
    stream_events,
    streamed_text,
)

MIB = 1 << 20
MAX_COOLDOWN_S = 1
MAX_RESPONSE_MB = 2
HANG_TIMEOUT_S = 1.5
REQUEST_TIMEOUT_S = 5  # server.request_timeout_s: caps the default deadline of a request
RETRY_AFTER_CASES = {  # case: the 429's headers, each of which once benched a key for centuries
    "digits": {"Retry-After": "1" + "0" * 23},
    "exponent": {"Retry-After": "1e23"},  # not delta-seconds: the (60 s) cooldown_s applies, capped too
    "year_9999": {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
    "reset_header": {"x-ratelimit-reset-requests": "99999999h", "x-ratelimit-remaining-requests": "0"},
    "retry_after_ms": {"retry-after-ms": "1" + "0" * 30},
    "negative": {"Retry-After": "-5"},  # counts as "now": a short rest
    "not_finite": {"Retry-After": "nan", "retry-after-ms": "inf", "x-ratelimit-reset-requests": "-inf"},
}


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream) -> Iterator[Gateway]:
    providers = [
        *(provider(f"ra-{case}", fake_server, keys_for(f"ra-{case}", 1)) for case in RETRY_AFTER_CASES),
        provider("brk", fake_server, keys_for("brk", 4)),
        provider("hang", fake_server, keys_for("hang", 4), timeout_s=HANG_TIMEOUT_S),
        provider("slowkey", fake_server, keys_for("slowkey", 2), timeout_s=HANG_TIMEOUT_S),
        provider("big", fake_server, keys_for("big", 2)),
        provider("enc", fake_server, keys_for("enc", 1)),
        provider("br", fake_server, keys_for("br", 2)),
        provider("js", fake_server, keys_for("js", 1)),
        provider("redir", fake_server, keys_for("redir", 1)),
        provider("one", fake_server, keys_for("one", 1), models=["m1", "m2"]),
    ]
    config = yaml.safe_load(make_config(providers, {"max_cooldown_s": MAX_COOLDOWN_S},
                                        {"smart": {"strategy": "fallback", "targets": ["one:m1", "one:m2"]}}))
    config["server"]["max_response_mb"] = MAX_RESPONSE_MB
    config["server"]["request_timeout_s"] = REQUEST_TIMEOUT_S
    gateway = Gateway(tmp_path_factory.mktemp("gw-hardening"), yaml.safe_dump(config, sort_keys=False)).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def shared(shared_gateway: Gateway, fake: FakeUpstream) -> Gateway:
    if shared_gateway.proc is None or shared_gateway.proc.poll() is not None:
        pytest.fail(f"the shared gateway is not running; its log:\n{shared_gateway.logs()[-3000:]}")
    return shared_gateway


def peak_rss_mib(gateway: Gateway) -> float:
    """The gateway process's peak resident memory so far (VmHWM), in MiB."""
    assert gateway.proc is not None
    for line in Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


# --------------------------------------------------------------- 7. cooldowns are capped
@pytest.mark.parametrize("case", list(RETRY_AFTER_CASES))
def test_an_absurd_retry_after_benches_the_key_at_most_max_cooldown_s(shared: Gateway, fake: FakeUpstream,
                                                                     case: str) -> None:
    model, key = f"ra-{case}:m", keys_for(f"ra-{case}", 1)[0]
    fake.script(Behaviour(status=429, headers=RETRY_AFTER_CASES[case]), key=key)
    with shared.client() as client:
        refused = chat(client, model)
        assert refused.status_code == 429, refused.text
        assert error_of(refused)["code"] == "all_keys_rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= MAX_COOLDOWN_S  # what the client is told
        time.sleep(MAX_COOLDOWN_S + 0.3)
        assert answer_text(chat(client, model)) == DEFAULT_TEXT  # the key is back
    assert fake.count(key) == 2


# ------------------------------------------------------------- 7. never sent a second time
def test_a_whole_answer_broken_after_200_is_a_502_and_not_sent_again(shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(cut_body_after=20))  # four keys, four attempts allowed
    with shared.client() as client:
        response = chat(client, "brk:m")
    assert response.status_code == 502, response.text
    assert error_of(response)["code"] == "provider_error"
    assert "not sent again" in error_of(response)["message"]
    assert fake.count() == 1  # one client request, one (billed) upstream call


# --------------------------------------------------------- 7. one deadline for all attempts
def test_a_key_that_times_out_fails_over_to_the_next_key_by_default(shared: Gateway, fake: FakeUpstream) -> None:
    slow, healthy = keys_for("slowkey", 2)  # a fresh provider's keys are tried in order
    fake.set_default(Behaviour(hang=True), key=slow)
    with shared.client() as client:
        started = time.monotonic()
        response = chat(client, "slowkey:m")
        elapsed = time.monotonic() - started
    assert answer_text(response) == DEFAULT_TEXT
    assert HANG_TIMEOUT_S - 0.1 <= elapsed < HANG_TIMEOUT_S + 2.0, elapsed  # one timeout, then the answer
    assert (fake.count(slow), fake.count(healthy)) == (1, 1)
    assert fake.wait_for_disconnects(1)  # the hanging attempt was aborted, not left running
    # the slow key had its whole timeout (its breaker counts it), the next key answered
    assert metric(shared, "gateway_upstream_attempts_total", provider="slowkey", outcome="timeout") == 1
    assert metric(shared, "gateway_upstream_attempts_total", provider="slowkey", outcome="ok") == 1


def test_a_hanging_pool_costs_at_most_request_timeout_s_not_one_timeout_per_attempt(
        shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(hang=True))  # four keys, max_attempts 4: 4 x 1.5 s > request_timeout_s
    with shared.client() as client:
        started = time.monotonic()
        response = chat(client, "hang:m")
        elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert error_of(response)["code"] == "upstream_timeout"
    assert REQUEST_TIMEOUT_S - 0.1 <= elapsed < REQUEST_TIMEOUT_S + 2.0, elapsed
    assert fake.count() == 4  # every key was tried
    assert fake.wait_for_disconnects(4)  # each hanging attempt was aborted, not left running
    # three attempts had their provider's whole timeout (each key's breaker counts it); the fourth
    # had the 0.5 s left before the deadline, which says nothing about its key
    assert metric(shared, "gateway_upstream_attempts_total", provider="hang", outcome="timeout") == 3
    assert metric(shared, "gateway_upstream_attempts_total", provider="hang", outcome="deadline") == 1


def test_total_timeout_s_is_one_deadline_each_attempt_gets_what_is_left(
        start_gateway: Any, fake: FakeUpstream) -> None:
    gateway = start_gateway(make_config([provider("slow", fake, keys_for("slow", 4), timeout_s=1.5)],
                                        routing={"total_timeout_s": 2.5}))
    fake.set_default(Behaviour(hang=True))
    with gateway.client() as client:
        started = time.monotonic()
        response = chat(client, "slow:m")
        elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert "deadline of 2.5 s" in error_of(response)["message"]
    assert 2.4 <= elapsed < 4.5, elapsed  # 1.5 s for the first attempt, the 1 s left for the second
    assert fake.count() == 2
    assert fake.wait_for_disconnects(2)
    # the first attempt timed out (the key's breaker counts it), the second was cut by the deadline
    assert metric(gateway, "gateway_upstream_attempts_total", provider="slow", outcome="timeout") == 1
    assert metric(gateway, "gateway_upstream_attempts_total", provider="slow", outcome="deadline") == 1


# ------------------------------------------------------------------ 7. answers are capped
@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content_length"])
def test_a_100_mb_answer_is_a_502_without_being_read_whole(shared: Gateway, fake: FakeUpstream,
                                                           declared: bool) -> None:
    fake.set_default(Behaviour(body_bytes=100 * MIB, declare_length=declared))
    peak_before = peak_rss_mib(shared)
    with shared.client() as client:
        response = chat(client, "big:m")
    assert response.status_code == 502, response.text[:300]
    assert "server.max_response_mb" in error_of(response)["message"]
    assert fake.count() == 1  # not sent again on the other key
    assert fake.wait_for_disconnects(1)
    assert fake.body_bytes_sent < 40 * MIB  # the rest was never asked for
    assert peak_rss_mib(shared) - peak_before < 40  # nor held in memory


def test_a_small_gzip_answer_that_inflates_past_the_cap_is_a_502(shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(body_bytes=100 * MIB, encoding="gzip"))  # ~100 KB on the wire
    peak_before = peak_rss_mib(shared)
    with shared.client() as client:
        response = chat(client, "big:m")
    assert response.status_code == 502, response.text[:300]
    assert "server.max_response_mb" in error_of(response)["message"]
    assert fake.count() == 1
    assert peak_rss_mib(shared) - peak_before < 40  # decoded in bounded pieces, stopped at the cap


def test_an_answer_under_the_cap_is_served(shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(body_bytes=MIB))
    with shared.client() as client:
        response = chat(client, "big:m")
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["pad"]) > MIB - 1024


# ------------------------------------------------------------ 7. compression nobody asked for
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_is_decoded_whole_and_streamed(shared: Gateway, fake: FakeUpstream,
                                                          encoding: str) -> None:
    fake.set_default(Behaviour(text="a squeezed answer", chunks=3, encoding=encoding))
    with shared.client() as client:
        assert answer_text(chat(client, "enc:m")) == "a squeezed answer"
        status, events = stream_events(client, "enc:m")
    assert status == 200
    assert streamed_text(events) == "a squeezed answer" and events[-1] == "[DONE]"
    assert {r.headers.get("accept-encoding") for r in fake.requests} == {"identity"}


def test_an_answer_in_an_unknown_content_encoding_is_a_clear_502(shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(encoding="br"))
    with shared.client() as client:
        whole = chat(client, "br:m")
        status, events = stream_events(client, "br:m")
    assert whole.status_code == 502, whole.text
    assert "content-encoding 'br'" in error_of(whole)["message"]
    assert status == 502 and not events  # an HTTP error, not a stream
    assert fake.count() == 2  # one call per client request


# ------------------------------------------------------ 7. a JSON answer to a stream request
def test_a_whole_json_answer_to_a_stream_request_reaches_the_client_as_a_stream(shared: Gateway,
                                                                                 fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text="whole, not streamed", ignore_stream=True))
    with shared.client() as client:
        status, events = stream_events(client, "js:m", stream_options={"include_usage": True})
    assert status == 200
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == "whole, not streamed"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["model"] == "js:m" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    sdk = openai.OpenAI(base_url=shared.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    parts = [c.choices[0].delta.content or "" for c in
             sdk.chat.completions.create(model="js:m", messages=[{"role": "user", "content": "hi"}], stream=True)
             if c.choices]
    assert "".join(parts) == "whole, not streamed"


def test_a_json_error_to_a_stream_request_is_an_http_error(shared: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(body={"error": {"message": "the model is overloaded"}}))  # 200, but an error
    fake.script(Behaviour(status=400, body={"error": {"message": "bad temperature"}}))
    with shared.client() as client:
        in_200 = client.post("/v1/chat/completions", json={"model": "js:m", "stream": True,
                                                           "messages": [{"role": "user", "content": "hi"}]})
        in_400 = client.post("/v1/chat/completions", json={"model": "js:m", "stream": True,
                                                           "messages": [{"role": "user", "content": "hi"}]})
    assert in_200.status_code == 502, in_200.text
    assert "the model is overloaded" in error_of(in_200)["message"]
    assert in_400.status_code == 400, in_400.text
    assert error_of(in_400)["message"] == "bad temperature"
    assert fake.count() == 2


# -------------------------------------------------------------------------- 7. a 304 answer
def test_an_upstream_304_is_a_502_not_a_400(shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(status=304))
    with shared.client() as client:
        response = chat(client, "redir:m")
    assert response.status_code == 502, response.text
    assert error_of(response)["code"] == "provider_error"
    assert "304" in error_of(response)["message"]


# ------------------------------------------------------- 8. alias fallback within one provider
def test_alias_falls_back_to_the_next_model_on_the_same_key(shared: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(status=500, body={"error": {"message": "boom"}}))  # the first attempt only
    with shared.client() as client:
        assert answer_text(chat(client, "smart")) == DEFAULT_TEXT
    assert (sent_for(fake, "m1"), sent_for(fake, "m2")) == (1, 1)


def test_alias_fallback_on_one_key_still_tries_each_model_once(shared: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(status=500, body={"error": {"message": "boom"}}))
    with shared.client() as client:
        response = chat(client, "smart")
    assert response.status_code == 502, response.text
    assert (sent_for(fake, "m1"), sent_for(fake, "m2")) == (1, 1)  # then nothing left: no third call
