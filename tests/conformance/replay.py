"""The conformance runner's upstream: it checks the one request a case expects and replays the
case's answer.

One server stands for every provider of ``gateway.yaml``: a provider's ``base_url`` is this
server's URL followed by ``/<provider id>``, so the first path segment says which provider the
gateway called and the rest is the path as that provider would see it. A request that differs
from the case (or that the case does not expect) is noted in ``problems`` and answered with a 400,
which the gateway does not retry.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from aiohttp import web

from tests.conformance.compare import differences
from tests.fake_upstream import FakeUpstream


def sse_bytes(sse: Any) -> bytes:
    """A case's stream: a string sent as written, or a list of ``{event?, data, crlf?}`` written as SSE
    events (``data`` a JSON value, or a string sent as it is; ``crlf: true``: CRLF line ends, as Google sends)."""
    if isinstance(sse, str):
        return sse.encode()
    out = []
    for item in sse:
        end = "\r\n" if item.get("crlf") else "\n"
        data = item["data"] if isinstance(item["data"], str) else json.dumps(item["data"], ensure_ascii=False)
        head = f"event: {item['event']}{end}" if "event" in item else ""
        out.append(f"{head}data: {data}{end}{end}")
    return "".join(out).encode()


class ReplayUpstream(FakeUpstream):
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(record=False)
        self.secrets = secrets  # never to be sent upstream (the client's key)
        self._lock = threading.Lock()
        self._exchange: dict[str, Any] | None = None
        self.problems: list[str] = []
        self.received = 0

    def expect(self, exchange: dict[str, Any] | None) -> None:
        """The next request must be ``exchange["request"]`` to ``exchange["provider"]`` (None: no request)."""
        with self._lock:
            self._exchange, self.problems, self.received = exchange, [], 0

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read() if request.body_exists else b""
        provider, _, rest = request.raw_path.lstrip("/").partition("/")
        with self._lock:
            exchange, self._exchange = self._exchange, None
            self.received += 1
        if exchange is None:
            return self._refuse([f"an upstream request the case does not expect: {request.method} {request.raw_path}"])
        problems = [] if provider == exchange["provider"] else \
            [f"sent to provider '{provider}', expected '{exchange['provider']}'"]
        problems += self._check(exchange["request"], request, "/" + rest, raw)
        problems += [f"request.headers.{name}: carries the client's key" for name, value in request.headers.items()
                     if any(secret in value for secret in self.secrets)]
        if problems:
            return self._refuse(problems)
        return await self._answer(request, exchange["response"])

    @staticmethod
    def _check(expected: dict[str, Any], request: web.BaseRequest, path: str, raw: bytes) -> list[str]:
        problems = differences(expected.get("method", "POST"), request.method, "request.method")
        problems += differences(expected["path"], path, "request.path")
        headers = {name.lower(): value for name, value in request.headers.items()}
        for name, want in (expected.get("headers") or {}).items():
            if want == "$absent":
                if name.lower() in headers:
                    problems.append(f"request.headers.{name}: must not be sent, got {headers[name.lower()]!r}")
            elif name.lower() not in headers:
                problems.append(f"request.headers.{name}: missing (lost)")
            else:
                problems += differences(want, headers[name.lower()], f"request.headers.{name}")
        if "body" in expected:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return [*problems, f"request.body: not JSON: {raw[:200]!r}"]
            problems += differences(expected["body"], body, "request.body")
        return problems

    def _refuse(self, problems: list[str]) -> web.Response:
        with self._lock:
            self.problems += problems
        return web.Response(status=400, content_type="application/json",
                            text=json.dumps({"error": {"message": "conformance: " + "; ".join(problems)[:2000]}}))

    async def _answer(self, request: web.BaseRequest, response: dict[str, Any]) -> web.StreamResponse:
        status = int(response.get("status", 200))
        headers = dict(response.get("headers") or {})
        if "sse" in response:
            headers.setdefault("content-type", "text/event-stream")
            stream = web.StreamResponse(status=status, headers=headers)
            await stream.prepare(request)
            await stream.write(sse_bytes(response["sse"]))
            await stream.write_eof()
            return stream
        headers.setdefault("content-type", "application/json")
        body = response.get("body")
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        return web.Response(status=status, headers=headers, body=text.encode())
