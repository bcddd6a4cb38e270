"""HTTP/1.0 clients, and a real Debian nginx in front of the gateway.

nginx's ``proxy_pass`` speaks HTTP/1.0 to its upstream unless told otherwise, so every request
through a default nginx is an HTTP/1.0 request for the gateway. Granian reports such a request
with ``http_version "1"``, which Falcon refuses; these tests prove the gateway answers it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import CLIENT_KEY, Gateway, free_port
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hello there"}]}


@dataclass
class RawResponse:
    status_line: str
    headers: dict[str, str]
    body: bytes


def http10(port: int, method: str, path: str, body: bytes = b"", key: str | None = None,
           timeout: float = 30.0) -> RawResponse:
    """Send one HTTP/1.0 request on a raw socket and read the answer until the server closes."""
    head = [f"{method} {path} HTTP/1.0", "Host: 127.0.0.1"]
    if key is not None:
        head.append(f"Authorization: Bearer {key}")
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    raw_head, _, payload = received.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return RawResponse(lines[0], headers, payload)


def sse_events(payload: bytes) -> list[str]:
    return [line[5:].strip() for line in payload.decode().splitlines() if line.startswith("data:")]


def streamed_text(events: list[str]) -> str:
    text = ""
    for event in events:
        if event == "[DONE]":
            continue
        for choice in json.loads(event).get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
    return text


# --- HTTP/1.0 straight to the gateway ----------------------------------------------------------

def test_http10_health_answers(gateway: Gateway) -> None:
    response = http10(gateway.port, "GET", "/health")
    assert response.status_line.startswith("HTTP/1.0 200"), response
    assert json.loads(response.body) == {"status": "healthy"}


def test_http10_chat_completion(gateway: Gateway, fake: FakeUpstream) -> None:
    response = http10(gateway.port, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), CLIENT_KEY)
    assert response.status_line.startswith("HTTP/1.0 200"), response
    assert json.loads(response.body)["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert fake.count() == 1
    assert "internal error" not in gateway.logs()


def test_http10_streamed_chat_completion(gateway: Gateway, fake: FakeUpstream) -> None:
    body = json.dumps({**CHAT, "stream": True}).encode()
    response = http10(gateway.port, "POST", "/v1/chat/completions", body, CLIENT_KEY)
    assert response.status_line.startswith("HTTP/1.0 200"), response
    assert response.headers["content-type"].startswith("text/event-stream")
    # HTTP/1.0 has no chunked encoding: the body is the raw SSE stream, ended by the close
    assert "chunked" not in response.headers.get("transfer-encoding", "")
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == DEFAULT_TEXT


def test_http10_errors_keep_their_status(gateway: Gateway) -> None:
    response = http10(gateway.port, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), "sk-wrong-key-000000")
    assert response.status_line.startswith("HTTP/1.0 401"), response
    assert json.loads(response.body)["error"]["code"] == "invalid_api_key"


# --- a real nginx in front ---------------------------------------------------------------------

# nginx's defaults: HTTP/1.0 upstream with "Connection: close", responses buffered
DEFAULT_LOCATION = "proxy_pass http://127.0.0.1:{upstream};"
# the recommended block for streaming in docs/operations.md (the "llm_gateway" upstream keeps connections alive)
STREAMING_LOCATION = """proxy_pass http://llm_gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;"""


class Nginx:
    """One nginx process in its own prefix (config, pid, logs and temp paths under ``root``)."""

    def __init__(self, root: Path, upstream_port: int, location: str):
        self.root = root
        self.port = free_port()
        for sub in ("logs", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.conf = root / "nginx.conf"
        self.conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream llm_gateway {{
        server 127.0.0.1:{upstream_port};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            {location.format(upstream=upstream_port)}
        }}
    }}
}}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Nginx:
        assert NGINX is not None
        log = (self.root / "logs" / "stderr.log").open("ab")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.root), "-c", str(self.conf)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted((self.root / "logs").glob("*.log")))


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[Callable[[int, str], Nginx]]:
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian package 'nginx'): cannot test the gateway behind it")
    started: list[Nginx] = []

    def start(upstream_port: int, location: str = DEFAULT_LOCATION) -> Nginx:
        nginx = Nginx(tmp_path / f"nginx{len(started)}", upstream_port, location)
        started.append(nginx)
        return nginx.start()

    yield start
    for nginx in started:
        nginx.stop()


def test_behind_default_nginx(gateway: Gateway, fake: FakeUpstream, start_nginx: Callable[[int, str], Nginx]) -> None:
    nginx = start_nginx(gateway.port, DEFAULT_LOCATION)
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.Client(base_url=nginx.base_url, timeout=30) as client:
        health = client.get("/health")
        assert health.status_code == 200, nginx.logs()
        assert health.json() == {"status": "healthy"}
        chat = client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers) as stream:
            assert stream.status_code == 200
            events = [line[5:].strip() for line in stream.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == DEFAULT_TEXT
    # nginx really spoke HTTP/1.0 upstream (its default), and the gateway logged no internal error
    assert fake.count() == 2
    assert "internal error" not in gateway.logs()


@pytest.mark.parametrize("location", [DEFAULT_LOCATION, STREAMING_LOCATION], ids=["default", "readme-block"])
def test_behind_nginx_streams_as_it_comes(gateway: Gateway, fake: FakeUpstream,
                                          start_nginx: Callable[[int, str], Nginx], location: str) -> None:
    # each SSE event reaches the client through nginx when the upstream sends it, not at the end
    nginx = start_nginx(gateway.port, location)
    fake.set_default(Behaviour(text="one two three four", chunks=4, chunk_delay_s=1.0))
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    arrivals: list[tuple[float, str]] = []
    with httpx.Client(base_url=nginx.base_url, timeout=30) as client:
        started = time.monotonic()
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers) as stream:
            assert stream.status_code == 200
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    arrivals.append((time.monotonic() - started, line[5:].strip()))
    events = [event for _, event in arrivals]
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == "one two three four"
    first_content = next(at for at, event in arrivals if event != "[DONE]" and streamed_text([event]))
    # the upstream needs >= 3 s for the whole stream; the first words must not wait for the end
    assert arrivals[-1][0] - first_content > 2.0, arrivals
