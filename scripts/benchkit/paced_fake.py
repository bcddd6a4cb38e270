"""The paced SSE fake, a subprocess of the run: each stream's events come INTERVAL apart, one write
(so one upstream read) per event, for the concurrent streams and the CPU per streamed event."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import select
import socket
import subprocess
from pathlib import Path
from subprocess import Popen
from typing import Any, cast

from benchkit.common import MODEL, PACKAGE_DIR, BenchError, log_tail
from benchkit.system import Processes

SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
HEALTH_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
LONG_STREAM_EVENTS = 101  # the second stream length of the per-event / per-request CPU split


@functools.lru_cache(maxsize=8)
def paced_frames(events: int) -> list[bytes]:
    """``events`` SSE events (content deltas, a usage event, ``[DONE]``), each one HTTP chunk."""
    base = {"id": "chatcmpl-paced", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    content = max(1, events - 2)
    payloads: list[dict[str, Any]] = []
    for i in range(content):
        delta = {"role": "assistant", "content": "tok"} if i == 0 else {"content": " tok"}
        payloads.append({**base, "choices": [{"index": 0, "delta": delta,
                                              "finish_reason": "stop" if i == content - 1 else None}]})
    payloads.append({**base, "choices": [],
                     "usage": {"prompt_tokens": 5, "completion_tokens": content, "total_tokens": 5 + content}})
    texts = [b"data: " + json.dumps(p, separators=(",", ":")).encode() + b"\n\n" for p in payloads]
    texts.append(b"data: [DONE]\n\n")
    return [f"{len(t):x}\r\n".encode() + t + b"\r\n" for t in texts]


class PacedSSE(asyncio.Protocol):
    """One connection of the paced fake: each POST gets its events ``interval`` seconds apart, as
    separate writes (so each upstream read carries one event); GET answers ``ok``; keep-alive.
    A body with ``"max_tokens":N`` gets N content events (then usage and ``[DONE]``)."""

    def __init__(self, frames: list[bytes], interval: float):
        self.frames, self.interval = frames, interval
        self.sent = frames
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.sending = False
        self.next_frame = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _take_request(self) -> bytes | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return None
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        found = re.search(rb'"max_tokens":(\d+)', body)
        self.sent = paced_frames(int(found.group(1)) + 2) if found else self.frames
        return head

    def _serve(self) -> None:
        while not self.sending and self.transport is not None and not self.transport.is_closing():
            head = self._take_request()
            if head is None:
                return
            if head.startswith(b"get"):
                self.transport.write(HEALTH_ANSWER)
                continue
            self.sending = True
            self.transport.write(SSE_HEAD + self.sent[0])
            self.next_frame = 1
            self.timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self.sent[self.next_frame])
        self.next_frame += 1
        if self.next_frame < len(self.sent):
            self.timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
            return
        self.transport.write(b"0\r\n\r\n")
        self.sending = False
        self._serve()


async def serve_paced_sse(events: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    frames = paced_frames(events)
    server = await loop.create_server(lambda: PacedSSE(frames, interval), "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await server.serve_forever()


def start_paced_fake(procs: Processes, python: str, tmp: Path, events: int,
                     interval: float) -> tuple[int, Popen[bytes]]:
    logf = tmp / "paced_fake.log"
    with logf.open("ab") as err:
        proc = procs.start("paced-fake", [python, str(PACKAGE_DIR), "--serve-paced-sse", str(events), str(interval)],
                           stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else b""
    if not line.startswith(b"READY "):
        raise BenchError(f"the paced SSE fake did not start (got {line!r}){log_tail(logf)}")
    return int(line.split()[1]), proc
