"""The one shared HTTP client to providers: httpx requests and responses over a transport.

Three transports, chosen by ``GATEWAY_HTTP_TRANSPORT``: ``lean`` (default, ``http1.py``:
asyncio protocols and httptools), ``aiohttp`` (an httpx transport on an aiohttp session) and
``httpx`` (httpx's own ``AsyncHTTPTransport``, which also honours proxies). ``scripts/bench``
compares them on this machine (README); the lean one is the fastest by far, so it is the
default. Requests go straight to the transport: the gateway needs none of ``AsyncClient``'s
cookie, redirect or auth handling. Responses are always streams; closing one before its end
aborts the upstream request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import httpx

MAX_CONNECTIONS = 1024
KEEPALIVE_S = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]  # an httpx.Headers from the adapters
    content: bytes


class Upstream:
    def __init__(self, transport: str = "lean", connect_timeout_s: float = 10.0):
        self._connect_timeout = connect_timeout_s
        self._transport_name = transport
        self._transport: httpx.AsyncBaseTransport | None = None
        self._urls: dict[str, httpx.URL] = {}

    def _make_transport(self) -> httpx.AsyncBaseTransport:
        if self._transport_name == "httpx":
            limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=256,
                                  keepalive_expiry=KEEPALIVE_S)
            return httpx.AsyncHTTPTransport(limits=limits, trust_env=True)
        if self._transport_name == "aiohttp":
            from .aiohttp_transport import AiohttpTransport  # imported only when chosen: it costs memory

            return AiohttpTransport(self._connect_timeout, MAX_CONNECTIONS, KEEPALIVE_S)
        from .http1 import LeanTransport

        return LeanTransport(MAX_CONNECTIONS, KEEPALIVE_S)

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 4096:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    async def open(self, request: UpstreamRequest, read_timeout_s: float) -> httpx.Response:
        """Send the request; return once the response headers are in (body not read yet)."""
        if self._transport is None:
            self._transport = self._make_transport()
        timeout = {"connect": self._connect_timeout, "read": read_timeout_s, "write": read_timeout_s,
                   "pool": self._connect_timeout}
        built = httpx.Request(request.method, self._url(request.url), headers=request.headers,
                              content=request.content, extensions={"timeout": timeout})
        return await self._transport.handle_async_request(built)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
