"""Open-loop latency on one keep-alive connection: requests due at a fixed rate, latency counted
from each request's due time (no coordinated omission); and the raw-socket HTTP/1.1 response reader
it (and the sequential overhead rounds) use."""

from __future__ import annotations

import socket
import time
from typing import Any

from benchkit.common import percentile, raw_request, request_body


def _sleep_until(due: float) -> None:
    """Sleep, then spin the last half millisecond: time.sleep alone overshoots by ~0.1 ms."""
    remaining = due - time.perf_counter()
    if remaining > 0.0006:
        time.sleep(remaining - 0.0005)
    while time.perf_counter() < due:
        pass


def _recv_into(sock: socket.socket, buf: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    buf += data


def read_http_response(sock: socket.socket, buf: bytearray) -> int:
    """Read one whole response (Content-Length or chunked) off ``sock``; its status."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        _recv_into(sock, buf)
    head = bytes(buf[:end]).lower()
    del buf[:end + 4]
    if b"transfer-encoding: chunked" in head:
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                _recv_into(sock, buf)
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
            while len(buf) < eol + 2 + size + 2:
                _recv_into(sock, buf)
            del buf[:eol + 2 + size + 2]
            if size == 0:
                break
    else:
        at = head.find(b"content-length:")
        length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        while len(buf) < length:
            _recv_into(sock, buf)
        del buf[:length]
    return int(head[9:12])


def paced_run(port: int, rate: float, duration: float, target: str) -> dict[str, Any]:
    """An open loop on one keep-alive connection: request i is due at start + i/rate whatever
    happened before; latency counts from the due time (a late answer delays the next send and
    that delay is counted, so no coordinated omission)."""
    request = raw_request(port, request_body(False))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    latency: list[float] = []
    bad = 0
    n = max(1, int(rate * duration))
    try:
        start = time.perf_counter() + 0.01
        for i in range(n):
            due = start + i / rate
            _sleep_until(due)
            sock.sendall(request)
            bad += read_http_response(sock, buf) != 200
            latency.append((time.perf_counter() - due) * 1000)
    finally:
        sock.close()
    return {"target": target, "rate": rate, "requests": n, "non_200": bad,
            "p50_ms": percentile(latency, 50), "p99_ms": percentile(latency, 99),
            "mean_ms": sum(latency) / len(latency)}
