"""Concurrent streams: N connections each streaming back to back from the paced fake (direct or
through the gateway), counting streams, events, TTFB and errors, with the server's CPU and memory
read around the run; and the split of the gateway's CPU per stream into request and events."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any, cast

from benchkit.common import BenchError, percentile, raw_request, run_loop
from benchkit.system import tree_cpu_s, tree_rss


class StreamConn(asyncio.Protocol):
    """A keep-alive connection that runs one streaming request at a time and times it."""

    def __init__(self, request: bytes):
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.head = bytearray()
        self.tail = b""
        self.head_done = self.seen_done = False
        self.events = 0
        self.t0 = 0.0
        self.ttfb: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self) -> asyncio.Future[None]:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.head.clear()
        self.tail, self.head_done, self.seen_done, self.events, self.ttfb = b"", False, False, 0, None
        self.t0 = time.perf_counter()
        self.transport.write(self.request)
        return self.done

    def data_received(self, data: bytes) -> None:
        done = self.done
        if done is None or done.done():
            return
        now = time.perf_counter()
        if not self.head_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if self.head[9:12] != b"200":
                done.set_exception(BenchError(f"stream answered {bytes(self.head[:200])!r}"))
                return
            self.head_done = True
            data = bytes(self.head[end + 4:])
            if not data:
                return
        if self.ttfb is None:
            self.ttfb = now - self.t0
        joined = self.tail + data  # the tail (< 6 bytes) cannot hold a whole "data: " itself
        self.events += joined.count(b"data: ")
        self.seen_done = self.seen_done or b"[DONE]" in joined
        self.tail = joined[-5:]
        if self.seen_done and joined.endswith(b"0\r\n\r\n"):
            done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc}"))


@dataclass
class StreamStats:
    target: str
    streams: int  # concurrent connections
    completed: int = 0
    errors: int = 0
    first_error: str = ""
    events: int = 0
    elapsed_s: float = 0.0
    ttfb_ms: list[float] = field(default_factory=list)
    server_cpu_s: float | None = None
    rss_mib: float | None = None

    @property
    def streams_per_s(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def cpu_us_per_event(self) -> float | None:
        return self.server_cpu_s * 1e6 / self.events if self.server_cpu_s is not None and self.events else None

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "ttfb_ms"}
        out.update(streams_per_s=self.streams_per_s, cpu_us_per_event=self.cpu_us_per_event,
                   ttfb_p50_ms=percentile(self.ttfb_ms, 50) if self.ttfb_ms else None,
                   ttfb_p99_ms=percentile(self.ttfb_ms, 99) if self.ttfb_ms else None)
        return out


async def _stream_worker(port: int, request: bytes, start_at: float, deadline: float, stats: StreamStats,
                         first: list[float], last: list[float]) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    conn: StreamConn | None = None
    while loop.time() < deadline:
        try:
            if conn is None or conn.transport is None or conn.transport.is_closing():
                _, conn = await loop.create_connection(lambda: StreamConn(request), "127.0.0.1", port)
            first.append(time.perf_counter())
            await asyncio.wait_for(conn.start(), 60)
        except (BenchError, OSError, TimeoutError) as exc:
            stats.errors += 1
            stats.first_error = stats.first_error or f"{type(exc).__name__}: {exc}"
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            conn = None
            await asyncio.sleep(0.05)
            continue
        last.append(time.perf_counter())
        stats.completed += 1
        stats.events += conn.events
        stats.ttfb_ms.append((conn.ttfb or 0.0) * 1000)
    if conn is not None and conn.transport is not None:
        conn.transport.close()


async def _streams(port: int, body: bytes, conns: int, duration: float, ramp: float, stats: StreamStats) -> None:
    loop = asyncio.get_running_loop()
    request = raw_request(port, body)
    start = loop.time() + 0.05
    first: list[float] = []
    last: list[float] = []
    await asyncio.gather(*(_stream_worker(port, request, start + ramp * i / conns, start + duration, stats,
                                          first, last) for i in range(conns)))
    stats.elapsed_s = max(last) - min(first) if last else 0.0


def run_streams(port: int, body: bytes, conns: int, duration: float, target: str,
                server_pid: int | None = None) -> StreamStats:
    """``conns`` connections each streaming back to back for ``duration`` s (starts spread over the
    first stream's length); TTFB = request written -> first body byte."""
    stats = StreamStats(target, conns)
    cpu0 = tree_cpu_s(server_pid) if server_pid else 0.0
    run_loop(_streams(port, body, conns, duration, min(1.0, duration / 4), stats))
    if server_pid:
        stats.server_cpu_s = tree_cpu_s(server_pid) - cpu0
        stats.rss_mib = tree_rss(server_pid)["total_mib"]
    return stats


def describe_streams(s: StreamStats) -> str:
    cpu = f", server CPU {s.cpu_us_per_event:.1f} µs/event" if s.cpu_us_per_event is not None else ""
    p50 = percentile(s.ttfb_ms, 50) if s.ttfb_ms else float("nan")
    p99 = percentile(s.ttfb_ms, 99) if s.ttfb_ms else float("nan")
    return (f"{s.target:7s} {s.streams} streams: {s.streams_per_s:7.1f} streams/s, {s.events} events, "
            f"TTFB p50 {p50:.2f} ms p99 {p99:.2f} ms, errors {s.errors}{cpu}"
            + (f" (first: {s.first_error})" if s.first_error else ""))


def event_split(short: StreamStats, long: StreamStats) -> dict[str, float | None]:
    """The gateway's CPU per stream is ``request + events × event``: two stream lengths at the same
    concurrency give the CPU of one more event (the relaying, without the per-request share) and
    of a stream request itself (auth, admission, upstream request, settle, record)."""
    def per_stream(s: StreamStats) -> tuple[float, float] | None:
        if s.server_cpu_s is None or not s.completed or s.errors:
            return None
        return s.server_cpu_s * 1e6 / s.completed, s.events / s.completed

    a, b = per_stream(short), per_stream(long)
    if a is None or b is None or b[1] <= a[1]:
        return {"cpu_us_per_event_marginal": None, "cpu_us_per_stream_request": None}
    event = (b[0] - a[0]) / (b[1] - a[1])
    return {"cpu_us_per_event_marginal": event, "cpu_us_per_stream_request": a[0] - a[1] * event}
