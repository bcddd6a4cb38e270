"""A guardrail webhook for tests: a real HTTP server on loopback, in a thread, with scripted answers.

    with FakeWebhook() as hook:
        hook.answer({"action": "block", "reason": "toxicity"})   # every request from now on
        ...  # a webhook guard with url: hook.url
        assert hook.requests[-1].json["texts"] == ["..."]

By default it answers ``{"action": "allow"}``; ``delay_s`` makes it slow (for timeouts), ``status``
an error status, ``raw`` an answer body that is not the protocol's JSON.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class HookRequest:
    headers: dict[str, str]  # lower-cased names
    json: Any


@dataclass
class HookAnswer:
    body: Any = None  # JSON to answer (default: allow)
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None  # answer these bytes instead of JSON


class FakeWebhook:
    def __init__(self) -> None:
        self.requests: list[HookRequest] = []
        self._answer = HookAnswer({"action": "allow"})
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/check"

    def answer(self, body: Any = None, *, status: int = 200, delay_s: float = 0.0, raw: bytes | None = None) -> None:
        with self._lock:
            self._answer = HookAnswer(body if body is not None else {"action": "allow"}, status, delay_s, raw)

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        with self._lock:
            self.requests.append(HookRequest({k.lower(): v for k, v in request.headers.items()}, payload))
            answer = self._answer
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        body = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
        return web.Response(status=answer.status, body=body, content_type="application/json")

    def start(self) -> FakeWebhook:
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/check", self._handle)
            self._runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = int(self._runner.addresses[0][1])
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-webhook", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving: requests still waiting on a delay are cancelled, then the thread ends."""
        if self._loop is not None and self._thread is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = self._loop = None

    def __enter__(self) -> FakeWebhook:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
