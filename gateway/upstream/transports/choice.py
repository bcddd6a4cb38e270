"""The HTTP transports under the shared upstream client, and which one a process uses.

``GATEWAY_HTTP_TRANSPORT`` picks one:

- ``lean`` (the default): the gateway's own HTTP/1.1 transport (``lean.py``); no proxies;
- ``aiohttp``: ``httpx-aiohttp``'s transport over one aiohttp session (``trust_env``: it
  honours ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``);
- ``reqwest``: ``pyreqwest`` (Rust reqwest/hyper; proxies from the environment too) behind a
  small httpx transport of ours (``ReqwestTransport``). Known limit (pyreqwest 0.15): a request
  still waiting for its response headers is not aborted when the caller gives up, so a client
  that disconnects does not cancel a non-streamed upstream request;
- ``httpx``: httpx's own ``AsyncHTTPTransport`` (httpcore; proxies too).

``scripts/bench`` measures them side by side (docs/operations.md, "Upstream HTTP transport"): lean needs
about half the CPU per request of aiohttp, the best maintained transport that also cancels, so
it stays the default. When a proxy is set, the default (or an explicit ``lean``) is replaced by
``PROXY_TRANSPORT``, with a warning, because lean would silently bypass the proxy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any, Literal, get_args

import httpx

TransportName = Literal["lean", "aiohttp", "reqwest", "httpx"]
TRANSPORT_NAMES: tuple[str, ...] = get_args(TransportName)
DEFAULT_TRANSPORT: TransportName = "lean"
PROXY_TRANSPORT: TransportName = "aiohttp"
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")

log = logging.getLogger("gateway.upstream")


def proxy_configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment names an outbound proxy (either case, as curl and httpx read it)."""
    return any(environ.get(name) or environ.get(name.upper()) for name in PROXY_VARIABLES)


def choose_transport(requested: TransportName | None, environ: Mapping[str, str]) -> TransportName:
    """The transport to use for ``requested`` (None: the default), given the proxy environment."""
    chosen: TransportName = requested or DEFAULT_TRANSPORT
    if chosen == "lean" and proxy_configured(environ):
        log.warning("the lean HTTP transport does not support proxies and a proxy is set "
                    "(HTTPS_PROXY/HTTP_PROXY/ALL_PROXY): using the %s transport instead", PROXY_TRANSPORT)
        return PROXY_TRANSPORT
    return chosen


def build_transport(name: TransportName, connect_timeout_s: float, max_connections: int,
                    keepalive_s: float) -> httpx.AsyncBaseTransport:
    """A new transport of kind ``name`` (imports only the library it needs: each costs memory)."""
    if name == "aiohttp":
        return _aiohttp_transport(max_connections, keepalive_s)
    if name == "reqwest":
        return ReqwestTransport(connect_timeout_s, max_connections, keepalive_s)
    if name == "httpx":
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=256,
                              keepalive_expiry=keepalive_s)
        return httpx.AsyncHTTPTransport(limits=limits, trust_env=True)
    from .lean import LeanTransport

    return LeanTransport(max_connections, keepalive_s)


def _aiohttp_transport(max_connections: int, keepalive_s: float) -> httpx.AsyncBaseTransport:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    def session() -> aiohttp.ClientSession:
        # created on first use, inside the event loop; trust_env: HTTP(S)_PROXY and NO_PROXY
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=keepalive_s)
        return aiohttp.ClientSession(connector=connector, trust_env=True, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",))

    return AiohttpTransport(client=session)


_ERRORS: tuple[tuple[str, type[httpx.TransportError]], ...] = (  # pyreqwest's, most specific first
    ("ConnectTimeoutError", httpx.ConnectTimeout), ("ReadTimeoutError", httpx.ReadTimeout),
    ("WriteTimeoutError", httpx.WriteTimeout), ("PoolTimeoutError", httpx.PoolTimeout),
    ("RequestTimeoutError", httpx.TimeoutException), ("ConnectError", httpx.ConnectError),
    ("ReadError", httpx.ReadError), ("WriteError", httpx.WriteError), ("NetworkError", httpx.NetworkError),
)


def _as_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    from pyreqwest import exceptions

    message = str(getattr(exc, "message", exc))
    for name, mapped in _ERRORS:
        if isinstance(exc, getattr(exceptions, name)):
            return mapped(message, request=request)
    return httpx.RemoteProtocolError(message, request=request)


class _ChunkStream(httpx.AsyncByteStream):
    """A pyreqwest body, chunk by chunk as it arrives; closing it ends the request."""

    def __init__(self, context: Any, response: Any, request: httpx.Request):
        self._context, self._reader, self._request = context, response.body_reader, request
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        from pyreqwest.exceptions import PyreqwestError

        while True:
            try:
                chunk = await self._reader.read_chunk()
            except PyreqwestError as exc:
                raise _as_httpx(exc, self._request) from exc
            if chunk is None:
                return
            yield bytes(chunk)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._context.__aexit__(None, None, None)


class ReqwestTransport(httpx.AsyncBaseTransport):
    """An httpx transport on ``pyreqwest`` (Rust reqwest/hyper), with the body streamed as it comes.

    Not pyreqwest's own httpx transport (0.15): its requests pre-read the body into a buffer
    before the response is returned, so a token stream reached the client only at its end, and
    it turns httpx's timeouts into one deadline for the whole exchange. Here the read buffer is
    0 and reqwest's per-read timeout (a client setting) is kept per read: one client per
    distinct read timeout (one per provider ``timeout_s`` in practice).
    """

    def __init__(self, connect_timeout_s: float, max_connections: int, keepalive_s: float):
        self._connect = connect_timeout_s
        self._max_connections = max_connections
        self._keepalive = keepalive_s
        self._clients: dict[float | None, Any] = {}

    def _build(self, read_timeout: float | None) -> Any:
        from pyreqwest.client import ClientBuilder

        builder = (ClientBuilder().follow_redirects(False).gzip(False).deflate(False).brotli(False).zstd(False)
                   .referer(False).max_connections(self._max_connections)
                   .connect_timeout(timedelta(seconds=self._connect))
                   .pool_timeout(timedelta(seconds=self._connect))
                   .pool_idle_timeout(timedelta(seconds=self._keepalive)))
        if read_timeout:
            builder = builder.read_timeout(timedelta(seconds=read_timeout))
        cafile = os.environ.get("SSL_CERT_FILE")
        if cafile:
            with open(cafile, "rb") as pem:
                builder = builder.add_root_certificate_pem(pem.read())
        return builder.build()

    def _client(self, read_timeout: float | None) -> Any:
        client = self._clients.get(read_timeout)
        if client is None:
            if len(self._clients) >= 64:  # bounded: timeouts come from the config, not from clients
                # dropped, not closed: requests in flight on it finish; it goes when they do
                del self._clients[next(iter(self._clients))]
            client = self._clients[read_timeout] = self._build(read_timeout)
        return client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from pyreqwest.exceptions import PyreqwestError

        timeouts = request.extensions.get("timeout") or {}
        builder = (self._client(timeouts.get("read")).request(request.method, str(request.url))
                   .headers(request.headers.multi_items()).body_bytes(request.content)
                   .streamed_read_buffer_limit(0))
        context = builder.build_streamed()
        try:
            response = await context.__aenter__()
        except PyreqwestError as exc:
            raise _as_httpx(exc, request) from exc
        return httpx.Response(response.status, headers=list(response.headers.items()),
                              stream=_ChunkStream(context, response, request), request=request,
                              extensions={"http_version": response.version.encode()})

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()
