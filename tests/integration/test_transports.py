"""Every upstream transport (GATEWAY_HTTP_TRANSPORT) relays answers and streams as they come.

One gateway per transport, each talking to the fake upstream: a whole answer, a stream whose
events are spaced out (the first must reach the client long before the last is sent: pyreqwest's
own httpx transport held the body back until its buffer filled, i.e. to the end of a stream),
an upstream that never answers (the provider's ``timeout_s`` turns it into a 504), and a client
that leaves while the upstream works (its request must be aborted upstream).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import yaml

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream

TRANSPORTS = ("lean", "aiohttp", "reqwest", "httpx")
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
                           "timeout_s": TIMEOUT_S},
                          {"id": "patient", "type": "openai-compatible", "base_url": fake_server.base_url,
                           "api_keys": ["sk-upstream-transport-2222"], "models": ["patient-model"],
                           "timeout_s": 60}],
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


def body(stream: bool = False, model: str = "fake-gpt-4o") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


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


def test_a_client_that_leaves_cancels_the_upstream_request(gw: Gateway,
                                                          transport_gateway: tuple[Gateway, FakeUpstream],
                                                          request: pytest.FixtureRequest) -> None:
    if "reqwest" in request.node.callspec.id:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=(
            "pyreqwest 0.15 does not abort a request still waiting for its headers when the awaiting task "
            "is cancelled: the default transport must not be reqwest while this fails")))
    fake = transport_gateway[1]
    assert until(lambda: fake.in_flight == 0, 5)  # earlier tests' upstream requests have ended
    fake.set_default(Behaviour(hang=True))
    payload = json.dumps(body(model="patient-model")).encode()  # its timeout (60 s) will not end it
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                     + payload)
        assert until(lambda: fake.in_flight == 1, 3)
    assert until(lambda: fake.in_flight == 0, 3)  # the upstream saw its connection close


def until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_unknown_transport_is_a_clear_error_not_a_traceback(tmp_path):
    env = {**os.environ, "GATEWAY_HTTP_TRANSPORT": "curl", "GATEWAY_ENV_FILE": str(tmp_path / "none.env")}
    done = subprocess.run([sys.executable, "-m", "gateway", "listen"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode != 0
    assert "GATEWAY_HTTP_TRANSPORT: Input should be 'lean', 'aiohttp', 'reqwest' or 'httpx'" in done.stderr
    assert "Traceback" not in done.stderr
