"""Streaming time to first byte: N sequential streaming requests on a keep-alive connection each,
direct and through the gateway alternately, so noise hits both alike."""

from __future__ import annotations

import http.client
import socket
import time
from typing import Any

from benchkit.common import CHAT_PATH, HEADERS, MODEL, STREAM_MODEL, BenchError, percentile, request_body
from benchkit.fakes import Fake
from benchkit.gateway_process import Gateway


class StreamTimer:
    """Keep-alive HTTP/1.1 connection timing one streaming request at a time."""

    def __init__(self, port: int, model: str):
        self.port = port
        self.body = request_body(True, model)
        self.conn: http.client.HTTPConnection | None = None

    def once(self) -> float:
        """Seconds from sending the request to receiving the first body byte."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.conn
        t0 = time.perf_counter()
        conn.request("POST", CHAT_PATH, body=self.body, headers=HEADERS)
        resp = conn.getresponse()
        first = resp.read(1)  # chunked: the first payload byte, not the chunk-size line
        t1 = time.perf_counter()
        rest = resp.read()
        if resp.status != 200 or not first or b"[DONE]" not in first + rest:
            raise BenchError(f"streaming request to port {self.port} answered {resp.status}: {(first + rest)[:500]!r}")
        if resp.will_close:
            self.close()
        return t1 - t0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def measure_ttfb(fake: Fake, gw: Gateway, n: int, warmup: int = 20) -> dict[str, Any]:
    direct, through = StreamTimer(fake.sse_port, MODEL), StreamTimer(gw.port, STREAM_MODEL)
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    try:
        for _ in range(warmup):
            direct.once()
            through.once()
        for _ in range(n):  # alternate so noise hits both alike
            samples["direct"].append(direct.once() * 1000)
            samples["gateway"].append(through.once() * 1000)
    finally:
        direct.close()
        through.close()
    out: dict[str, Any] = {"requests": n}
    for k, v in samples.items():
        out[k] = {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "mean_ms": sum(v) / len(v),
                  "min_ms": min(v), "max_ms": max(v), "samples_ms": [round(x, 4) for x in v]}
    out["added_p50_ms"] = out["gateway"]["p50_ms"] - out["direct"]["p50_ms"]
    out["added_p99_ms"] = out["gateway"]["p99_ms"] - out["direct"]["p99_ms"]
    return out
