"""Bad request bodies get a 4xx, never a 500; a body that stalls gets 408.

Everything goes over HTTP (raw sockets where the client must misbehave) to the real gateway,
which talks to the fake upstream.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

BODY_TIMEOUT_S = 1.0
MESSAGES = [{"role": "user", "content": "x"}]


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` levels deep (``[[[...]]]``)."""
    return "[" * depth + "]" * depth


def chat_with(**fields: str) -> bytes:
    """A valid chat body plus ``fields`` spliced in as raw JSON text."""
    extra = "".join(f', "{name}": {raw}' for name, raw in fields.items())
    return ('{"model": "fast", "messages": [{"role": "user", "content": "x"}]' + extra + "}").encode()


BAD_BODIES: dict[str, tuple[str, bytes, str]] = {
    # case: (path, raw body, words the error message contains)
    "passthrough_nested_300": ("/v1/chat/completions", chat_with(metadata=nested(300)), "nested"),
    "passthrough_nested_254": ("/v1/chat/completions", chat_with(metadata=nested(254)), "nested"),
    "nested_past_the_parser": ("/v1/chat/completions", chat_with(metadata=nested(1100)), "JSON"),
    "message_content_nested": ("/v1/chat/completions",
                               b'{"model": "fast", "messages": [{"role": "user", "content": '
                               + nested(400).encode() + b"}]}", "nested"),
    "embeddings_input_nested": ("/v1/embeddings",
                                b'{"model": "fake:fake-text-embedding-3-small", "input": '
                                + nested(300).encode() + b"}", "nested"),
    "not_utf8": ("/v1/chat/completions",
                 b'{"model": "fast", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "JSON"),
    "lone_surrogate": ("/v1/chat/completions",
                       b'{"model": "fast", "messages": [{"role": "user", "content": "\\ud800"}]}', "JSON"),
    "byte_order_mark": ("/v1/chat/completions", b"\xef\xbb\xbf" + chat_with(), "JSON"),
    "array": ("/v1/chat/completions", b"[1, 2]", "object"),
    "string": ("/v1/chat/completions", b'"hello"', "object"),
    "null": ("/v1/chat/completions", b"null", "object"),
    "number": ("/v1/chat/completions", b"12", "object"),
    "nan": ("/v1/chat/completions", chat_with(temperature="NaN"), "JSON"),
    "infinity": ("/v1/chat/completions", chat_with(temperature="Infinity"), "JSON"),
    "number_past_double": ("/v1/chat/completions", chat_with(temperature="1e400"), "JSON"),
    "max_tokens_past_int64": ("/v1/chat/completions", chat_with(max_tokens="1" + "0" * 30), "max_tokens"),
    "empty": ("/v1/chat/completions", b"", "empty"),
    "whitespace": ("/v1/chat/completions", b"   ", "JSON"),
    "truncated": ("/v1/chat/completions", chat_with()[:-5], "JSON"),
}


@pytest.fixture(scope="module")
def body_gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream) -> Any:
    config = basic_config(fake_server).replace(
        "request_timeout_s: 5", f"request_timeout_s: 5\n  body_timeout_s: {BODY_TIMEOUT_S}")
    gateway = Gateway(tmp_path_factory.mktemp("gw-bodies"), config).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def gw(body_gateway: Gateway, fake: FakeUpstream) -> Gateway:
    if body_gateway.proc is None or body_gateway.proc.poll() is not None:
        pytest.fail(f"the gateway is not running; its log:\n{body_gateway.logs()[-3000:]}")
    return body_gateway


def raw_request(gw: Gateway, head: bytes, parts: list[bytes], pause_s: float = 0.0, read_timeout: float = 30.0,
                until_closed: bool = False) -> tuple[bytes, float]:
    """Send ``head`` then ``parts`` (``pause_s`` apart) on one connection; read until a whole answer
    came (or, ``until_closed``, until the gateway closes the connection) or ``read_timeout``.
    Returns (what came back, seconds from the last byte sent to the end of the answer)."""
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.settimeout(read_timeout)
        sock.sendall(head)
        for i, part in enumerate(parts):
            if i and pause_s:
                time.sleep(pause_s)
            sock.sendall(part)
        sent = time.monotonic()
        received = b""
        while until_closed or not answer_complete(received):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received, time.monotonic() - sent


def answer_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", f"Authorization: Bearer {CLIENT_KEY}",
             "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_error(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_body_is_a_400_with_a_reason_never_a_500(gw: Gateway, fake: FakeUpstream, case: str) -> None:
    path, body, words = BAD_BODIES[case]
    with gw.client() as client:
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request")
    assert words in error["message"], error["message"]
    assert fake.count() == 0


def test_nesting_the_gateway_can_send_on_is_served(gw: Gateway, fake: FakeUpstream) -> None:
    """Deep, but within the documented limit: passed through to the upstream unchanged."""
    with gw.client() as client:
        response = client.post("/v1/chat/completions", content=chat_with(metadata=nested(60)),
                               headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert fake.requests[0].json["metadata"] == json.loads(nested(60))


def test_the_gateway_still_serves_after_bad_bodies(gw: Gateway, fake: FakeUpstream) -> None:
    with gw.client() as client:
        for _, body, _ in BAD_BODIES.values():
            client.post("/v1/chat/completions", content=body)
        response = client.post("/v1/chat/completions", json={"model": "fast", "messages": MESSAGES})
    assert response.status_code == 200
    assert "internal_error" not in gw.logs()
    assert "Traceback" not in gw.logs()


STALLS: dict[str, Callable[[bytes], tuple[dict[str, str], list[bytes]]]] = {
    # case: body -> (headers, what is sent before the client goes quiet)
    "content_length_half_sent": lambda body: ({"Content-Length": str(len(body))}, [body[: len(body) // 2]]),
    "content_length_nothing_sent": lambda body: ({"Content-Length": str(len(body))}, []),
    "chunked_no_last_chunk": lambda body: ({"Transfer-Encoding": "chunked"},
                                           [f"{len(body):x}\r\n".encode() + body + b"\r\n"]),
}


@pytest.mark.parametrize("case", list(STALLS))
def test_a_stalled_body_gets_408_after_body_timeout_s(gw: Gateway, fake: FakeUpstream, case: str) -> None:
    body = chat_with()
    headers, parts = STALLS[case](body)
    answer, waited = raw_request(gw, request_head("/v1/chat/completions", headers), parts,
                                 read_timeout=BODY_TIMEOUT_S + 10, until_closed=True)
    assert answer, "no answer"
    assert answer_complete(answer), answer  # and then the connection was closed (else: read timeout)
    status, error = status_and_error(answer)
    assert status == 408
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
    assert f"{BODY_TIMEOUT_S:g} s" in error["message"]
    assert BODY_TIMEOUT_S - 0.2 <= waited <= BODY_TIMEOUT_S + 5  # not for ever: the old code never answered
    assert fake.count() == 0


def test_a_slow_body_that_arrives_in_time_is_served(gw: Gateway, fake: FakeUpstream) -> None:
    body = chat_with()
    parts = [body[:10], body[10:20], body[20:]]
    answer, _ = raw_request(gw, request_head("/v1/chat/completions", {"Content-Length": str(len(body))}),
                            parts, pause_s=BODY_TIMEOUT_S / 4)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert fake.count() == 1


def test_a_trickled_body_cannot_hold_the_connection_past_the_timeout(gw: Gateway, fake: FakeUpstream) -> None:
    """One byte at a time, each well within the timeout: the whole body still has one deadline."""
    body = chat_with()
    head = request_head("/v1/chat/completions", {"Content-Length": str(len(body))})
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.settimeout(0.1)
        sock.sendall(head)
        started = time.monotonic()
        answer = b""
        for byte in body[:-1]:
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer_complete(answer) or time.monotonic() - started > BODY_TIMEOUT_S + 10:
                break
        elapsed = time.monotonic() - started
    status, error = status_and_error(answer)
    assert (status, error["code"]) == (408, "request_timeout")
    assert elapsed <= BODY_TIMEOUT_S + 5
