"""Every upstream transport (GATEWAY_HTTP_TRANSPORT) relays answers and streams as they come (issue 12, item 4).

One gateway per transport, each talking to the fake upstream: a whole answer, a stream whose
events are spaced out (the first must reach the client long before the last is sent: pyreqwest's
own httpx transport held the body back until its buffer filled, i.e. to the end of a stream),
and an upstream that never answers (the provider's ``timeout_s`` turns it into a 504).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream

TRANSPORTS = ("reqwest", "aiohttp", "lean", "httpx")
EVENT_GAP_S = 0.4
CHUNKS = 5
TIMEOUT_S = 1


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                      fake_server: FakeUpstream) -> Iterator[tuple[Gateway, FakeUpstream]]:
    config = yaml.safe_dump({
        "server": {"listen": "127.0.0.1:2906", "connect_timeout_s": 2},
        "llm_providers": [{"id": "fake", "type": "openai-compatible", "base_url": fake_server.base_url,
                           "api_keys": ["sk-upstream-transport-1111"], "models": ["fake-gpt-4o"],
                           "timeout_s": TIMEOUT_S}],
        "api_keys": [{"id": "app", "key": CLIENT_KEY}],
    }, sort_keys=False)
    gateway = Gateway(tmp_path_factory.mktemp(f"gw-{request.param}"), config,
                      {"GATEWAY_HTTP_TRANSPORT": request.param})
    gateway.start()
    yield gateway, fake_server
    gateway.stop()


@pytest.fixture
def gw(transport_gateway: tuple[Gateway, FakeUpstream]) -> Iterator[Gateway]:
    gateway, fake = transport_gateway
    fake.reset()
    yield gateway
    fake.reset()


def body(stream: bool = False) -> dict[str, object]:
    return {"model": "fake-gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def test_whole_answer(gw: Gateway) -> None:
    with gw.client() as client:
        response = client.post("/v1/chat/completions", json=body())
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT


def test_stream_events_arrive_as_they_are_sent(gw: Gateway, transport_gateway: tuple[Gateway, FakeUpstream]) -> None:
    transport_gateway[1].set_default(Behaviour(chunks=CHUNKS, chunk_delay_s=EVENT_GAP_S))
    arrivals: list[float] = []
    contents: list[str] = []
    with gw.client() as client:
        start = time.monotonic()
        with client.stream("POST", "/v1/chat/completions", json=body(stream=True)) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    arrivals.append(time.monotonic() - start)
                    for choice in json.loads(line[5:]).get("choices") or ():
                        contents.append(choice["delta"].get("content") or "")
    assert "".join(contents) == DEFAULT_TEXT
    total = (CHUNKS - 1) * EVENT_GAP_S
    assert arrivals[0] < total / 2, f"first event after {arrivals[0]:.2f} s of a {total:.1f} s stream: buffered"
    assert arrivals[-1] - arrivals[0] > total / 2, arrivals


def test_an_upstream_that_never_answers_is_a_504(gw: Gateway,
                                                 transport_gateway: tuple[Gateway, FakeUpstream]) -> None:
    transport_gateway[1].set_default(Behaviour(hang=True))
    with gw.client() as client:
        start = time.monotonic()
        response = client.post("/v1/chat/completions", json=body())
    assert response.status_code == 504, response.text
    assert time.monotonic() - start < TIMEOUT_S + 4
