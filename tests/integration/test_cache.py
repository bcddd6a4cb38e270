"""The response cache, through the real gateway and the fake upstream: opt-in
per alias or client, x-cache hit/miss, streams replayed as SSE, Cache-Control, TTL, the byte
bound, no provider key used by a hit, client limits counting it, the ledger and the metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_admin_api import wait_until
from tests.store.servers import RedisServer

OWN_KEY = "sk-test-own-cache-client-0123"  # a client with its own cache
LIMITED_KEY = "sk-test-limited-client-01234"  # a client limited to 2 requests a minute, with a cache
SOLO_KEY = "sk-upstream-solo-key-3333333"  # the only key of provider "solo" (1 request a minute)
BIG_TEXT = "word " * 200  # an answer of about 1.3 KB: three of them do not fit in the "small" alias


def cache_config(fake: FakeUpstream, storage: str = "") -> str:
    """``basic_config`` plus provider "solo" (one key, one request a minute), aliases with caches and
    clients with their own caches."""
    solo = f"""  - id: solo
    type: openai-compatible
    base_url: {fake.base_url}
    api_keys: ["{SOLO_KEY}"]
    models: [fake-gpt-4o]
    limits: {{req_per_min: 1}}
"""
    aliases = """  cached: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 60, max_mb: 1}}
  brief: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 1, max_mb: 1}}
  small: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 60, max_mb: 0.004}}
  solo-cached: {targets: [solo:fake-gpt-4o], cache: {ttl_s: 60, max_mb: 1}}
"""
    clients = f"""  - id: own
    key: {OWN_KEY}
    cache: {{ttl_s: 60, max_mb: 1}}
  - id: limited
    key: {LIMITED_KEY}
    limits: {{req_per_min: 2}}
    cache: {{ttl_s: 60, max_mb: 1}}
"""
    config = basic_config(fake).replace("model_aliases:\n", solo + "model_aliases:\n" + aliases)
    return config + clients + storage


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("cache"), cache_config(fake_server)).start()
    yield gateway
    gateway.stop()


def sdk(gateway: Gateway, key: str = CLIENT_KEY, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0, timeout=30,
                         default_headers=headers or None)


def ask(gateway: Gateway, prompt: str, model: str = "cached", key: str = CLIENT_KEY,
        headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    with gateway.client(key) as client:
        return client.post("/v1/chat/completions", headers=headers or {},
                           json={"model": model, "messages": [{"role": "user", "content": prompt}], **params})


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"  # the module's gateway keeps its cache between tests


def lookups(gateway: Gateway) -> dict[str, float]:
    found = re.findall(r'^gateway_cache_lookups_total\{result="(\w+)"\} (\S+)$', gateway.metrics(), re.M)
    return {result: float(value) for result, value in found}


def test_a_miss_then_a_hit_with_the_same_body_and_one_upstream_call(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("capital of France?")
    raw = sdk(gw).chat.completions.with_raw_response.create(model="cached",
                                                            messages=[{"role": "user", "content": prompt}])
    again = sdk(gw).chat.completions.with_raw_response.create(model="cached",
                                                              messages=[{"role": "user", "content": prompt}])
    assert raw.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
    assert fake.count() == 1
    assert again.http_response.content == raw.http_response.content  # the same id, created, text
    assert again.parse().choices[0].message.content == raw.parse().choices[0].message.content
    assert again.parse().usage == raw.parse().usage


def test_not_opted_in_is_not_cached_and_has_no_header(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("uncached")
    first, second = ask(gw, prompt, model="fast"), ask(gw, prompt, model="fast")
    assert first.status_code == second.status_code == 200
    assert "x-cache" not in first.headers and "x-cache" not in second.headers
    assert fake.count() == 2 and first.json()["id"] != second.json()["id"]


def test_a_client_cache_is_its_own(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("mine")
    assert ask(gw, prompt, model="fast", key=OWN_KEY).headers["x-cache"] == "miss"
    assert ask(gw, prompt, model="fast", key=OWN_KEY).headers["x-cache"] == "hit"
    assert "x-cache" not in ask(gw, prompt, model="fast").headers  # another client, no cache on "fast"
    assert fake.count() == 2


def test_a_stream_hit_replays_the_stream_as_sse(gw: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text="one two three four", chunks=4))
    prompt = unique("stream me")
    messages: Any = [{"role": "user", "content": prompt}]

    def streamed() -> tuple[str, list[str], Any]:
        raw = sdk(gw).chat.completions.with_raw_response.create(
            model="cached", messages=messages, stream=True, stream_options={"include_usage": True})
        chunks = list(raw.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return raw.headers["x-cache"], [text, *(c.id for c in chunks)], chunks[-1].usage

    first, second = streamed(), streamed()
    assert (first[0], second[0]) == ("miss", "hit")
    assert first[1] == second[1] and first[1][0] == "one two three four"  # same text, same chunk ids
    assert second[2] is not None and second[2] == first[2]
    assert fake.count() == 1
    # a stream without the usage chunk is another form: from the upstream, then from the cache
    for expected in ("miss", "hit"):
        stream = sdk(gw).chat.completions.with_raw_response.create(model="cached", messages=messages, stream=True)
        assert stream.headers["x-cache"] == expected
        assert all(chunk.usage is None for chunk in stream.parse())
    assert fake.count() == 2


def test_a_whole_answer_serves_a_later_stream(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("whole first")
    whole = sdk(gw).chat.completions.create(model="cached", messages=[{"role": "user", "content": prompt}])
    raw = sdk(gw).chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": prompt}], stream=True)
    assert raw.headers["x-cache"] == "hit" and raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert fake.count() == 1


def test_a_broken_stream_is_not_kept(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("cut short")
    fake.script(Behaviour(chunks=4, cut_after=2))
    with gw.client() as client:
        body = {"model": "cached", "messages": [{"role": "user", "content": prompt}], "stream": True}
        assert b"stream_interrupted" in client.post("/v1/chat/completions", json=body).content
        assert client.post("/v1/chat/completions", json=body).headers["x-cache"] == "miss"
    assert fake.count() == 2


def test_no_cache_bypasses_the_lookup_and_keeps_the_fresh_answer(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("fresh please")
    first = ask(gw, prompt)
    fresh = sdk(gw, **{"Cache-Control": "no-cache"}).chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": prompt}])
    assert fresh.headers["x-cache"] == "miss" and fake.count() == 2
    later = ask(gw, prompt)
    assert later.headers["x-cache"] == "hit" and later.json()["id"] == fresh.parse().id != first.json()["id"]
    assert fake.count() == 2


def test_no_store_skips_storing(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("do not keep")
    assert ask(gw, prompt, headers={"Cache-Control": "no-store"}).headers["x-cache"] == "miss"
    assert ask(gw, prompt).headers["x-cache"] == "miss"
    assert ask(gw, prompt, headers={"cache-control": "private, no-store"}).headers["x-cache"] == "hit"
    assert fake.count() == 2


def test_an_entry_expires_after_its_ttl(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("short lived")
    assert ask(gw, prompt, model="brief").headers["x-cache"] == "miss"
    assert ask(gw, prompt, model="brief").headers["x-cache"] == "hit"
    time.sleep(1.2)  # ttl_s: 1
    assert ask(gw, prompt, model="brief").headers["x-cache"] == "miss"
    assert fake.count() == 2


def test_the_byte_bound_evicts_the_least_recently_used(gw: Gateway, fake: FakeUpstream) -> None:
    fake.set_default(Behaviour(text=BIG_TEXT))
    a, b, c = unique("a"), unique("b"), unique("c")
    assert [ask(gw, p, model="small").headers["x-cache"] for p in (a, b, a, c)] == ["miss", "miss", "hit", "miss"]
    assert ask(gw, a, model="small").headers["x-cache"] == "hit"  # used last but one: kept
    assert ask(gw, b, model="small").headers["x-cache"] == "miss"  # the least recently used: evicted
    assert fake.count() == 4


def test_different_sampling_parameters_miss_and_field_order_does_not(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("sample")
    assert ask(gw, prompt, temperature=0).headers["x-cache"] == "miss"
    assert ask(gw, prompt, temperature=0.7).headers["x-cache"] == "miss"
    assert ask(gw, prompt, temperature=0, seed=1).headers["x-cache"] == "miss"
    assert ask(gw, prompt, temperature=0, max_tokens=5).headers["x-cache"] == "miss"
    with gw.client() as client:  # the same request with its fields in another order, and a user id
        body = {"temperature": 0, "messages": [{"content": prompt, "role": "user"}], "model": "cached", "user": "u1"}
        assert client.post("/v1/chat/completions", json=body).headers["x-cache"] == "hit"
    assert fake.count() == 4


def test_a_hit_needs_no_provider_key_capacity(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("solo")
    assert ask(gw, prompt, model="solo-cached").headers["x-cache"] == "miss"  # the only key's one request
    refused = ask(gw, unique("other"), model="solo-cached")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "all_keys_rate_limited"
    hit = ask(gw, prompt, model="solo-cached")
    assert hit.status_code == 200 and hit.headers["x-cache"] == "hit"
    assert fake.count(SOLO_KEY) == 1


def test_a_hit_counts_against_the_client_limit(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("limited")
    first = ask(gw, prompt, model="fast", key=LIMITED_KEY)
    hit = ask(gw, prompt, model="fast", key=LIMITED_KEY)
    assert (first.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert hit.headers["x-ratelimit-remaining-requests"] == "0"
    third = ask(gw, prompt, model="fast", key=LIMITED_KEY)
    assert third.status_code == 429 and third.json()["error"]["code"] == "rate_limit_exceeded"
    assert fake.count() == 1


def test_the_ledger_marks_a_hit_with_the_cost_it_saved(gw: Gateway, fake: FakeUpstream) -> None:
    prompt = unique("ledger")
    miss, hit = ask(gw, prompt, key=OWN_KEY), ask(gw, prompt, key=OWN_KEY)
    ids = {miss.headers["x-request-id"]: "miss", hit.headers["x-request-id"]: "hit"}

    def rows() -> dict[str, dict[str, Any]]:
        with gw.client(MASTER_KEY) as api:
            found = api.get("/admin/v1/requests/recent", params={"client_id": "own", "limit": 50}).json()["requests"]
        return {ids[r["request_id"]]: r for r in found if r["request_id"] in ids}

    wait_until(lambda: len(rows()) == 2, what="two ledger rows")
    got = rows()
    assert got["miss"]["cache_hit"] is False and got["hit"]["cache_hit"] is True
    usage = miss.json()["usage"]
    expected = (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1000  # basic_config's pricing
    assert got["miss"]["cost"] == pytest.approx(expected) and got["miss"]["saved_usd"] == 0
    assert got["hit"]["cost"] == 0 and got["hit"]["saved_usd"] == pytest.approx(expected)  # spent nothing
    assert got["hit"]["key_label"] == "" and got["miss"]["key_label"].startswith("fake#")  # no key used
    assert (got["hit"]["provider"], got["hit"]["tokens_in"]) == ("fake", usage["prompt_tokens"])
    with gw.client(MASTER_KEY) as api:  # the client's spend counts the miss only; the hit is saved
        spent = api.get("/admin/v1/metrics/clients/own").json()["total_cost"]
        [group] = api.get("/admin/v1/stats", params={"group_by": "client", "client_key": "own"}).json()["groups"]
        summary = api.get("/admin/metrics").json()
    assert spent == pytest.approx(group["cost"]) and group["cache_hits"] >= 1
    assert group["saved_usd"] >= expected * 0.999 and group["cost"] < group["requests"] * expected
    assert summary["cache_hits"] >= 1 and summary["cache_saved_usd"] >= expected * 0.999


def test_the_metrics_count_hits_and_misses(gw: Gateway, fake: FakeUpstream) -> None:
    before = lookups(gw)
    prompt = unique("metrics")
    for _ in range(3):
        ask(gw, prompt)
    ask(gw, prompt, headers={"Cache-Control": "no-cache"})  # no lookup made
    after = lookups(gw)
    assert after.get("hit", 0) - before.get("hit", 0) == 2
    assert after.get("miss", 0) - before.get("miss", 0) == 1
    with gw.client(MASTER_KEY) as api:  # what the dashboard shows: the hit rate since start
        cache = api.get("/admin/v1/status").json()["cache"]
    assert (cache["hits"], cache["misses"]) == (after["hit"], after["miss"])
    assert cache["hit_rate"] == pytest.approx(after["hit"] / (after["hit"] + after["miss"]), abs=1e-6)
    text = gw.metrics()
    assert re.search(r"^gateway_cache_bytes \d", text, re.M) and "gateway_cache_saved_usd_total" in text


def test_a_cache_in_redis_is_shared_by_gateways(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                               redis_server: RedisServer) -> None:
    storage = f'storage: {{runtime: {{type: redis, addr: "{redis_server.addr}", prefix: "cache-test:"}}}}\n'
    one, two = start_gateway(cache_config(fake, storage)), start_gateway(cache_config(fake, storage))
    prompt = unique("shared")
    first = ask(one, prompt)
    second = ask(two, prompt)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.json() == first.json() and fake.count() == 1
    with two.client() as client:  # a stream from the other gateway's whole answer
        body = {"model": "cached", "messages": [{"role": "user", "content": prompt}], "stream": True}
        streamed = client.post("/v1/chat/completions", json=body)
    assert streamed.headers["x-cache"] == "hit" and streamed.text.endswith("data: [DONE]\n\n")


def test_a_reload_turns_an_alias_cache_off_and_on(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    config = cache_config(fake)
    gateway = start_gateway(config)
    prompt = unique("reloaded")
    assert [ask(gateway, prompt).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]
    version = gateway.readiness()["config"]["version"]
    gateway.write_config(config.replace("cached: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 60, max_mb: 1}}",
                                        "cached: {targets: [fake:fake-gpt-4o]}"))
    version = gateway.wait_for_version_change(version)
    assert "x-cache" not in ask(gateway, prompt).headers and fake.count() == 2
    gateway.write_config(config)
    gateway.wait_for_version_change(version)
    assert ask(gateway, prompt).headers["x-cache"] == "miss"  # the alias's old cache was dropped
    assert fake.count() == 3
