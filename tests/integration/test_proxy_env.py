"""HTTP_PROXY/HTTPS_PROXY/NO_PROXY in the gateway's environment are honoured.

A tiny forward/CONNECT proxy runs on loopback in the test; the gateway, started with
``HTTP_PROXY`` pointing at it, must send its upstream requests through it: by default and when
``GATEWAY_HTTP_TRANSPORT=lean`` was asked for (lean, the default, has no proxy support, so a
proxy-capable transport replaces it, with a warning). ``NO_PROXY`` naming the upstream's host
bypasses it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Gateway, basic_config
from tests.fake_upstream import DEFAULT_TEXT, FakeUpstream

CHAT = {"model": "fake-gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


class TinyProxy:
    """Forward proxy (absolute-form requests) and CONNECT tunnels; records each connection's first line."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            line, rest = head.split(b"\r\n", 1)
            method, target, version = line.decode("latin-1").split(" ")
            with self._lock:
                self.seen.append(f"{method} {target}")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=10)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = rest.split(b"\r\n\r\n", 1)[1]
            else:  # absolute form: http://host:port/path -> origin form to the origin
                authority, _, path = target.removeprefix("http://").partition("/")
                host, port = authority.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=10)
                first = f"{method} /{path} {version}\r\n".encode() + rest
            with upstream:
                upstream.sendall(first)
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        def copy(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=copy, args=(b, a), daemon=True)
        back.start()
        copy(a, b)
        back.join(30)

    def close(self) -> None:
        self.listener.close()

    def saw(self, port: int) -> bool:
        with self._lock:
            return any(f"127.0.0.1:{port}" in line for line in self.seen)


@pytest.fixture
def proxy() -> Iterator[TinyProxy]:
    server = TinyProxy()
    yield server
    server.close()


def ask(gateway: Gateway) -> str:
    with gateway.client() as client:
        response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def test_http_proxy_is_used_by_default(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                       proxy: TinyProxy) -> None:
    gateway = start_gateway(basic_config(fake), env={"HTTP_PROXY": f"http://127.0.0.1:{proxy.port}"})
    assert ask(gateway) == DEFAULT_TEXT
    assert proxy.saw(fake.port), proxy.seen


def test_lean_asked_with_a_proxy_set_still_goes_through_it(start_gateway: Callable[..., Gateway],
                                                           fake: FakeUpstream, proxy: TinyProxy) -> None:
    gateway = start_gateway(basic_config(fake), env={"http_proxy": f"http://127.0.0.1:{proxy.port}",
                                                     "GATEWAY_HTTP_TRANSPORT": "lean"})
    assert ask(gateway) == DEFAULT_TEXT
    assert proxy.saw(fake.port), proxy.seen
    assert "does not support proxies" in gateway.logs()


def test_the_default_transport_with_a_proxy_set_says_which_it_uses(start_gateway: Callable[..., Gateway],
                                                                     fake: FakeUpstream, proxy: TinyProxy) -> None:
    gateway = start_gateway(basic_config(fake), env={"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}"})
    assert ask(gateway) == DEFAULT_TEXT  # an http:// upstream: HTTPS_PROXY does not apply to it
    assert proxy.seen == []
    assert "using the aiohttp transport instead" in gateway.logs()


def test_no_proxy_bypasses_the_proxy(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                     proxy: TinyProxy) -> None:
    gateway = start_gateway(basic_config(fake), env={"HTTP_PROXY": f"http://127.0.0.1:{proxy.port}",
                                                     "NO_PROXY": "127.0.0.1"})
    assert ask(gateway) == DEFAULT_TEXT
    assert proxy.seen == []
