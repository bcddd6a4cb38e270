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

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp
import httpx

MAX_CONNECTIONS = 1024
KEEPALIVE_S = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


class _AiohttpStream(httpx.AsyncByteStream):
    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._response.content.is_eof():
            self._response.release()  # fully read: the connection goes back to the pool
        else:
            self._response.close()  # cut short: drop the connection, which aborts the upstream


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through one aiohttp ``ClientSession``."""

    def __init__(self, connect_timeout_s: float):
        self._session: aiohttp.ClientSession | None = None
        self._connect_timeout = connect_timeout_s
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _timeout(self, read_s: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(read_s)
        if timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeout = self._timeouts[read_s] = aiohttp.ClientTimeout(
                total=None, connect=self._connect_timeout, sock_connect=self._connect_timeout, sock_read=read_s)
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False,
                                                  skip_auto_headers=("User-Agent",))
        read_s = request.extensions.get("timeout", {}).get("read") or 600.0
        try:
            response = await self._session.request(request.method, str(request.url), headers=request.headers,
                                                   data=request.content, timeout=self._timeout(read_s),
                                                   allow_redirects=False, compress=None)
        except (aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, aiohttp.ClientResponseError) as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(response.status, headers=response.raw_headers, stream=_AiohttpStream(response),
                              request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
            return AiohttpTransport(self._connect_timeout)
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
