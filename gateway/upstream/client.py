"""The one shared HTTP client to providers: httpx requests and responses over a transport.

The transport under it is chosen once per process (``transports/choice.py``: ``GATEWAY_HTTP_TRANSPORT``,
and a proxy-capable one when a proxy is set). Requests go straight to the transport: the
gateway needs none of ``AsyncClient``'s cookie, redirect or auth handling. Responses are
always streams; closing one before its end aborts the upstream request.

The adapters ask for ``accept-encoding: identity``; an upstream that compresses anyway is
decoded here (gzip and deflate, with bounded output so a small bomb cannot blow up), and any
other coding is refused with ``UndecodableAnswer``. ``read_answer`` reads a whole answer up to a
limit and stops (aborting the upstream) the moment it is passed.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing

import httpx

from ..core.request import UpstreamRequest
from .transports.choice import TransportName, build_transport, choose_transport
from .transports.lean import LeanTransport, sends_length, with_host

MAX_CONNECTIONS = 1024
KEEPALIVE_S = 30.0
DECODE_PIECE = 1 << 20  # decompressed output is produced in pieces of at most this many bytes


class AnswerTooLarge(Exception):
    """A non-streamed answer is longer than the configured limit (the rest was not read)."""


class UndecodableAnswer(Exception):
    """An answer in a content coding the gateway does not decode, or a corrupt compressed one."""


class _Inflater:
    """Incremental gzip/deflate decoding with bounded output pieces."""

    def __init__(self, coding: str):
        self.coding = coding
        self._z: zlib._Decompress | None = None

    def _start(self, first: bytes) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is meant to be zlib-wrapped; some servers send raw deflate: tell by the header
        wrapped = len(first) >= 2 and (first[0] & 0x0F) == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        if self._z is None:
            self._z = self._start(data)
        try:
            while data:
                piece = self._z.decompress(data, DECODE_PIECE)
                if piece:
                    yield piece
                data = self._z.unconsumed_tail
        except zlib.error as exc:
            raise UndecodableAnswer(f"the {self.coding} answer is corrupt ({exc})") from None

    def finish(self) -> None:
        if self._z is not None and not self._z.eof:
            raise UndecodableAnswer(f"the {self.coding} answer ended before its end")


def inflater_for(headers: httpx.Headers) -> _Inflater | None:
    """A decoder for the answer's ``content-encoding``, None for none; ``UndecodableAnswer`` for others."""
    coding = headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return _Inflater("gzip")
    if coding == "deflate":
        return _Inflater("deflate")
    raise UndecodableAnswer(f"it is in content-encoding '{coding[:40]}', which the gateway does not decode "
                            "(it asks for identity; gzip and deflate are decoded)")


class _DecodedStream(httpx.AsyncByteStream):
    """A response stream with its content coding removed (closing it closes the upstream)."""

    def __init__(self, inner: httpx.AsyncByteStream, inflater: _Inflater):
        self._inner, self._inflater = inner, inflater

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                for piece in self._inflater.feed(chunk):
                    yield piece
            self._inflater.finish()
        except UndecodableAnswer as exc:
            raise httpx.DecodingError(str(exc)) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def decode_stream(response: httpx.Response) -> None:
    """Make ``response.stream`` yield decoded bytes if the upstream compressed it anyway.

    Raises ``UndecodableAnswer`` (before anything is read) for a coding that is not decoded.
    """
    inflater = inflater_for(response.headers)
    if inflater is not None:
        response.stream = _DecodedStream(async_stream(response), inflater)


def async_stream(response: httpx.Response) -> httpx.AsyncByteStream:
    """``response.stream`` as the async stream it is here (httpx types it sync-or-async)."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return stream


async def _pieces(response: httpx.Response, inflater: _Inflater | None) -> AsyncGenerator[bytes, None]:
    async for chunk in async_stream(response):
        if inflater is None:
            yield chunk
        else:
            for piece in inflater.feed(chunk):
                yield piece
    if inflater is not None:
        inflater.finish()


async def read_answer(response: httpx.Response, limit: int) -> bytes:
    """The whole answer, decoded; ``AnswerTooLarge`` as soon as it passes ``limit`` bytes.

    Straight from the transport's stream; the caller closes the response on an error (which
    aborts the upstream instead of reading the rest).
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(f"it announced {int(declared)} bytes")
    parts: list[bytes] = []
    size = 0
    async with aclosing(_pieces(response, inflater_for(response.headers))) as pieces:
        async for piece in pieces:
            size += len(piece)
            if size > limit:
                raise AnswerTooLarge(f"it passed {limit} bytes")
            parts.append(piece)
    await response.aclose()
    return b"".join(parts)


async def read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of an (error) answer, decoded where possible, never failing on its
    coding: an error message is read for the operator, not relied upon."""
    try:
        inflater = inflater_for(response.headers)
    except UndecodableAnswer:
        inflater = None
    parts: list[bytes] = []
    size = 0
    try:
        async with aclosing(_pieces(response, inflater)) as pieces:
            async for piece in pieces:
                parts.append(piece)
                size += len(piece)
                if size >= limit:
                    break
    except UndecodableAnswer:
        pass
    return b"".join(parts)[:limit]


def _headers(request: UpstreamRequest, url: httpx.URL, extra: Sequence[tuple[str, str]] | None) -> httpx.Headers:
    """The headers httpx would send (``Host``, ``Content-Length``) without its per-request preparation:
    ``httpx.Request(content=...)`` costs about three times more, a share of every request."""
    headers = with_host(request.headers, url)
    if sends_length("content-length" in headers, request.method, request.content):
        headers["Content-Length"] = str(len(request.content))
    if extra is not None:
        headers.update(extra)
    return headers


class Upstream:
    """``mounts``: transports that answer a URL scheme in-process (a plugin provider type's, such as
    ``echo://``); every other URL goes to the chosen transport."""

    def __init__(self, transport: TransportName | None = None, connect_timeout_s: float = 10.0,
                 environ: Mapping[str, str] | None = None,
                 mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None):
        self._connect_timeout = connect_timeout_s
        self._mounts = {f"{scheme}:": mounted for scheme, mounted in (mounts or {}).items()}
        self.transport_name: TransportName = choose_transport(transport, os.environ if environ is None else environ)
        self._transport: httpx.AsyncBaseTransport | None = None
        self._uploads: httpx.AsyncBaseTransport | None = None  # see _upload_transport
        self._urls: dict[str, httpx.URL] = {}

    def _make_transport(self) -> httpx.AsyncBaseTransport:
        return build_transport(self.transport_name, self._connect_timeout, MAX_CONNECTIONS, KEEPALIVE_S)

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 4096:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    async def open(self, request: UpstreamRequest, read_timeout_s: float,
                   extra: Sequence[tuple[str, str]] | None = None) -> httpx.Response:
        """Send the request; return once the response headers are in (body not read yet).

        ``extra``: headers of this one request on top of ``request.headers`` (the trace context of
        an attempt), added without copying a shared head's headers (``LeanTransport.send_bytes``)."""
        if self._transport is None:
            self._transport = self._make_transport()
        timeout = {"connect": self._connect_timeout, "read": read_timeout_s, "write": read_timeout_s,
                   "pool": self._connect_timeout}
        if self._mounts:
            mounted = self._mounts.get(request.url.partition("//")[0])
            if mounted is not None:
                return await mounted.handle_async_request(httpx.Request(
                    request.method, request.url, headers=request.headers,
                    content=request.body_stream if request.body_stream is not None else request.content,
                    extensions={"timeout": timeout}))
        if request.body_stream is not None:  # an upload: httpx's transport streams it with backpressure
            headers = request.headers if extra is None else {**request.headers, **dict(extra)}
            built = httpx.Request(request.method, self._url(request.url), headers=headers,
                                  content=request.body_stream, extensions={"timeout": timeout})
            return await self._upload_transport().handle_async_request(built)
        if request.shared_head and isinstance(self._transport, LeanTransport):  # no httpx.Request per call
            return await self._transport.send_bytes(request.method, request.url, request.headers, request.content,
                                                    timeout, extra)
        url = self._url(request.url)
        built = httpx.Request(request.method, url, headers=_headers(request, url, extra),
                              stream=httpx.ByteStream(request.content), extensions={"timeout": timeout})
        built.read()  # ``content`` set from the one bytes object, no copy
        return await self._transport.handle_async_request(built)

    def _upload_transport(self) -> httpx.AsyncBaseTransport:
        """Where bodies streamed through go: httpx's own transport, which sends each chunk as it is read
        (pyreqwest's ``body_stream`` reads ahead without bound, the lean transport sends whole bodies)."""
        if self._uploads is None:
            self._uploads = httpx.AsyncHTTPTransport(trust_env=True)
        return self._uploads

    async def aclose(self) -> None:
        for mounted in self._mounts.values():
            await mounted.aclose()
        if self._transport is not None:
            await self._transport.aclose()
        if self._uploads is not None:
            await self._uploads.aclose()
            self._uploads = None
            self._transport = None
