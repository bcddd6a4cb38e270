"""A small HTTP server the sink tests point the gateway at: it keeps what webhook and OTLP sinks send.

``POST /ingest`` takes a webhook batch (a JSON array); ``POST /v1/logs`` an OTLP/HTTP logs export,
decoded with opentelemetry-proto. Each request is kept with its headers; ``script`` sets the
statuses of the next answers (then 200 again), ``delay_s`` makes every answer slow.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float = field(default_factory=time.monotonic)

    def records(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.body)
        return data


class SinkReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *statuses: int) -> None:
        with self._lock:
            self.statuses.extend(statuses)

    def accepted(self, path: str = "/ingest") -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path and r.status < 300]

    def records(self) -> list[dict[str, Any]]:
        return [record for batch in self.accepted() for record in batch.records()]

    def wait_for_records(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"the receiver has {len(self.records())} records, not {count}")

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            status = self.statuses.popleft() if self.statuses else 200
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        with self._lock:
            self.received.append(Received(request.path, dict(request.headers), body, status))
        return web.Response(status=status, body=b"" if request.path == "/v1/logs" else b"{}",
                            content_type="application/x-protobuf" if request.path == "/v1/logs" else "application/json")

    def __enter__(self) -> SinkReceiver:
        started = threading.Event()

        async def serve() -> None:
            app = web.Application(client_max_size=64 << 20)
            app.router.add_post("/ingest", self._handle)
            app.router.add_post("/v1/logs", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            if self._runner is not None:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
