"""What a request costs the Redis store: a gateway on Redis, a client with request
and token limits and a budget, a priced provider; redis-server's MONITOR counts the commands each
request sends. Admission (budget hold, request and token windows) is one script, the key's marks
one read, the charge one script and the settle one script: four round trips, all or none counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

from .servers import RedisServer, redis_available

LIMITED = f"""
api_keys:
  - id: app
    key: {CLIENT_KEY}
    allowed_providers: ["*"]
    limits: {{req_per_min: 1000, tokens_per_min: 1000000}}
    budget: {{daily_usd: 1000}}
"""


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    reason = redis_available()
    if reason:
        pytest.skip(reason)
    server = RedisServer().start()
    yield server
    server.cleanup()


class Monitor:
    """redis-server's MONITOR on a raw socket: the commands clients sent (not those scripts ran)."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.sendall(b"MONITOR\r\n")
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *done, buf = buf.split(b"\r\n")
            self.lines += [d.decode(errors="replace") for d in done]

    def client_commands(self) -> list[str]:
        return [ln.split("] ", 1)[1].split(" ", 1)[0].strip('"').upper() for ln in self.lines
                if "] " in ln and "[0 lua]" not in ln]

    def close(self, port: int) -> None:
        """Stop once a marker sent after everything else has come through (nothing is left unread)."""
        with socket.create_connection(("127.0.0.1", port)) as other:
            other.sendall(b"ECHO monitor-end\r\n")
            other.recv(100)
        deadline = time.monotonic() + 5
        while not any("monitor-end" in ln for ln in self.lines) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._sock.close()
        self._thread.join(5)


def chat(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": "fast", "max_tokens": 5,
                                                      "messages": [{"role": "user", "content": "hi"}]})


def test_a_request_costs_four_round_trips_to_redis(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                   redis: RedisServer) -> None:
    config = basic_config(fake).split("\napi_keys:")[0] + "\n" + LIMITED
    # the ledger is written once a minute here, so only the requests' own commands are counted
    config += f'storage:\n  runtime: {{type: redis, addr: "{redis.addr}"}}\n  ledger_flush_s: 60\n'
    gateway = start_gateway(config)
    with gateway.client() as client:
        assert chat(client).status_code == 200  # scripts loaded, connection made
        monitor = Monitor(redis.port)
        try:
            for _ in range(5):
                answer = chat(client)
                assert answer.status_code == 200, answer.text
                assert answer.headers["x-ratelimit-remaining-requests"]  # the admission's windows answered
        finally:
            monitor.close(redis.port)
    sent = [c for c in monitor.client_commands() if c != "ECHO"]
    assert sent.count("EVALSHA") == 4 * 5, sent
    assert len(sent) == 4 * 5, sent
