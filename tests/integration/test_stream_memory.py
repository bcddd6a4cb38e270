"""Relaying a long stream holds buffers, not the answer: the gateway process's peak resident
memory while it relays a 128 MiB streamed answer from the fake upstream, read by a client as
fast as it can or at a slow pace, with and without a response cache (``max_mb: 1``: the answer
is far too large to keep). Each test starts its own gateway, so memory an earlier stream left
with the allocator cannot hide growth."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.conftest import Gateway, basic_config
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_admin_api import wait_until

MIB = 1 << 20
STREAM_BYTES = 128 * MIB
DELTA = "lorem ipsum dolor sit amet " * 20  # 540 characters of content per event
SLOW_RATE = 16 * MIB  # bytes a second the slow client reads: the upstream sends far faster
GROWTH_LIMIT_MIB = 40  # measured 2-8 MiB on a loaded 2-core machine; 126-378 MiB when it held the answer


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    alias = "  cached: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 60, max_mb: 1}}\n"
    return start_gateway(basic_config(fake).replace("model_aliases:\n", "model_aliases:\n" + alias))


def status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def peak_baseline(pid: int) -> float:
    """Start the process's VmHWM again from its current resident memory (Linux ``clear_refs``) and
    return that; where it cannot be reset, the peak so far (growth above it is still seen)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return status_mib(pid, "VmHWM")
    return status_mib(pid, "VmRSS")


def read_stream(gateway: Gateway, model: str, prompt: str, rate: float | None) -> tuple[int, list[bytes], str]:
    """Stream one chat completion; read it as fast as possible (``rate`` None) or at ``rate``
    bytes a second. The bytes received, the last events, and ``x-cache``."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    received, tail, started = 0, b"", time.monotonic()
    with gateway.client(timeout=60) as client, client.stream("POST", "/v1/chat/completions", json=body) as answer:
        assert answer.status_code == 200, answer.read()
        for piece in answer.iter_raw(256 << 10 if rate is None else 64 << 10):
            received += len(piece)
            tail = (tail + piece)[-4096:]
            if rate is not None:
                ahead = received / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        cache = answer.headers.get("x-cache", "")
    return received, tail.split(b"\n\n")[-4:], cache


def peak_growth_mib(gateway: Gateway, fake: FakeUpstream, model: str, rate: float | None) -> tuple[float, list[bytes]]:
    """Relay one small stream first (whatever the first request sets up is in place), then the
    long one; the peak resident memory over the process's before the long one, in MiB."""
    assert gateway.proc is not None
    pid = gateway.proc.pid
    fake.set_default(Behaviour(stream_bytes=MIB, text=DELTA))
    read_stream(gateway, model, "warm up", None)
    fake.set_default(Behaviour(stream_bytes=STREAM_BYTES, text=DELTA))
    time.sleep(0.2)
    before = peak_baseline(pid)
    received, last, _ = read_stream(gateway, model, "the long one", rate)
    time.sleep(0.2)
    assert received > STREAM_BYTES * 0.95  # the whole answer came through
    return status_mib(pid, "VmHWM") - before, last


def assert_complete(last: list[bytes]) -> None:
    assert last[-2] == b"data: [DONE]"
    assert b'"finish_reason":"stop"' in last[-3].replace(b" ", b"")


@pytest.mark.parametrize("rate", [None, SLOW_RATE], ids=["fast-reader", "slow-reader"])
def test_an_uncached_long_stream_is_relayed_in_bounded_memory(gw: Gateway, fake: FakeUpstream,
                                                              rate: float | None) -> None:
    growth, last = peak_growth_mib(gw, fake, "fake:fake-gpt-4o", rate)
    assert_complete(last)
    assert growth < GROWTH_LIMIT_MIB, f"peak RSS grew {growth:.0f} MiB relaying {STREAM_BYTES // MIB} MiB"


@pytest.mark.parametrize("rate", [None, SLOW_RATE], ids=["fast-reader", "slow-reader"])
def test_a_stream_too_large_for_its_cache_is_not_held_and_not_kept(gw: Gateway, fake: FakeUpstream,
                                                                   rate: float | None) -> None:
    growth, last = peak_growth_mib(gw, fake, "cached", rate)
    assert_complete(last)
    assert growth < GROWTH_LIMIT_MIB, f"peak RSS grew {growth:.0f} MiB relaying {STREAM_BYTES // MIB} MiB"
    fake.set_default(Behaviour(stream_bytes=4096, text=DELTA))
    asked = fake.count()
    assert read_stream(gw, "cached", "the long one", None)[2] == "miss"  # the long answer was not kept
    assert fake.count() == asked + 1
    # an answer within the bound is still kept, and served again from the cache
    assert read_stream(gw, "cached", "a short one", None)[2] == "miss"
    received, last, cache = read_stream(gw, "cached", "a short one", None)
    assert (cache, fake.count()) == ("hit", asked + 2)
    assert_complete(last)


def test_an_event_that_never_ends_is_given_up_with_an_error_event(gw: Gateway, fake: FakeUpstream) -> None:
    """One event of 40 MiB (past the 32 MiB a relay waits for the end of one event): the client
    gets an error event in its place, and the request is recorded as interrupted."""
    fake.set_default(Behaviour(stream_bytes=40 * MIB, text="x" * (40 * MIB)))
    received, last, _ = read_stream(gw, "fake:fake-gpt-4o", "one huge event", None)
    assert received < MIB
    error = orjson.loads(last[-2].removeprefix(b"data: "))["error"]
    assert error["code"] == "stream_interrupted" and "32 MB" in error["message"]
    wait_until(lambda: any(json.loads(line).get("error") == "stream_interrupted"
                           for line in gw.logs().splitlines() if line.startswith("{")))


def test_the_local_estimate_of_a_long_stream_counts_every_character(gw: Gateway, fake: FakeUpstream) -> None:
    """Without usage from the upstream, the completion tokens are estimated from the content's
    characters (about 4 a token), counted as the stream passes instead of keeping the text:
    escapes and non-ASCII characters count as one character each."""
    delta = 'héllo "wörld"\n\t\\ 日本 '
    fake.set_default(Behaviour(stream_bytes=2 * MIB, text=delta, usage=False))
    with gw.client() as client, client.stream("POST", "/v1/chat/completions", json={
            "model": "fake:fake-gpt-4o", "stream": True, "messages": [{"role": "user", "content": "count"}]}) as answer:
        raw = answer.read()
    contents = [orjson.loads(event[6:])["choices"][0]["delta"].get("content", "")
                for event in raw.split(b"\n\n") if event.startswith(b"data: {")]
    chars = sum(len(text) for text in contents)
    assert chars > 50_000 and set(contents) == {delta, ""}

    def completion_tokens() -> float | None:
        found = re.search(r'^gateway_tokens_total\{[^}]*direction="output"[^}]*\} (\S+)$', gw.metrics(), re.M)
        return float(found.group(1)) if found else None

    wait_until(lambda: completion_tokens() is not None)
    assert completion_tokens() == (chars + 3) // 4
