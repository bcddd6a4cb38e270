"""The lean HTTP/1.1 transport against real local servers: TLS, chunked bodies, keep-alive, timeouts."""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from gateway.upstream.transports.lean import LeanTransport


class Server:
    """An aiohttp server in its own thread: /json (length-delimited), /chunked, /slow, /close."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response({"echo": (await request.read()).decode()})

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"):
            await response.write(part)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text="late")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/json", self._json)
        app.router.add_get("/chunked", self._chunked)
        app.router.add_get("/slow", self._slow)

        runner = self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.tls)
        self.loop.run_until_complete(site.start())
        self.port = int(runner.addresses[0][1])
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> Server:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def fetch(transport: LeanTransport, method: str, url: str, content: bytes = b"", read: float = 5.0):
    async def go():
        request = httpx.Request(method, url, content=content, extensions={"timeout": {"read": read, "connect": 5}})
        response = await transport.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        chunks = [chunk async for chunk in response.stream]
        await response.aclose()
        return response.status_code, b"".join(chunks), len(chunks)
    return go()


def test_plain_http_keep_alive_and_chunked_bodies():
    async def scenario(port: int):
        transport = LeanTransport()
        first = await fetch(transport, "POST", f"http://127.0.0.1:{port}/json", b"hello")
        second = await fetch(transport, "POST", f"http://127.0.0.1:{port}/json", b"again")
        pool = next(iter(transport._pools.values()))
        idle_after = len(pool.idle)
        chunked = await fetch(transport, "GET", f"http://127.0.0.1:{port}/chunked")
        await transport.aclose()
        return first, second, idle_after, chunked

    with Server() as server:
        first, second, idle_after, chunked = asyncio.run(scenario(server.port))
    assert first[:2] == (200, b'{"echo": "hello"}') and second[:2] == (200, b'{"echo": "again"}')
    assert idle_after == 1  # one connection, kept alive and reused
    assert chunked[0] == 200 and chunked[1] == b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"
    assert chunked[2] >= 2  # the body arrives piece by piece, not buffered whole


def test_read_timeout_and_connection_refused():
    async def scenario(port: int):
        transport = LeanTransport()
        with pytest.raises(httpx.ReadTimeout):
            await fetch(transport, "GET", f"http://127.0.0.1:{port}/slow", read=0.2)
        with pytest.raises(httpx.ConnectError):
            await fetch(transport, "GET", "http://127.0.0.1:9/nothing-listens-here")
        await transport.aclose()

    with Server() as server:
        asyncio.run(scenario(server.port))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_verifies_against_the_configured_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def scenario(port: int):
        trusting = LeanTransport()
        ok = await fetch(trusting, "POST", f"https://localhost:{port}/json", b"secure")
        await trusting.aclose()
        return ok

    with Server(server_tls) as server:
        # the environment's CA bundle (certifi) does not know this certificate: refused
        async def untrusted():
            transport = LeanTransport()
            with pytest.raises(httpx.ConnectError):
                await fetch(transport, "POST", f"https://localhost:{server.port}/json", b"x")
            await transport.aclose()
        asyncio.run(untrusted())
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # an operator's private CA
        status, body, _ = asyncio.run(scenario(server.port))
    assert (status, body) == (200, b'{"echo": "secure"}')


def test_informational_responses_are_skipped_and_answers_stay_with_their_requests():
    async def scenario():
        served = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                served += 1
                body = f'{{"answer_for_request": {served}}}'.encode()
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = LeanTransport()
        first = await fetch(transport, "POST", f"http://127.0.0.1:{port}/", b"1")
        second = await fetch(transport, "POST", f"http://127.0.0.1:{port}/", b"2")
        await transport.aclose()
        server.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert first[:2] == (200, b'{"answer_for_request": 1}')
    assert second[:2] == (200, b'{"answer_for_request": 2}')


def test_a_post_is_not_sent_twice_when_the_upstream_drops_it_after_working_on_it():
    async def scenario():
        received = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            received.append(head)
            if len(received) == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")  # the second request, on the kept-alive connection
                received.append(head)
                await asyncio.sleep(0.3)  # "working on it" ...
            writer.transport.abort()  # ... then the connection drops

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = LeanTransport()
        await fetch(transport, "POST", f"http://127.0.0.1:{port}/", b"1")
        with pytest.raises(httpx.ReadError):
            await fetch(transport, "POST", f"http://127.0.0.1:{port}/", b"2")
        await transport.aclose()
        server.close()
        return received

    assert len(asyncio.run(scenario())) == 2


@pytest.mark.parametrize("header", [("x-note", "a\r\nx-injected: 1"), ("x-note", "a\nb"), ("x-note", "a\rb"),
                                    ("x-note", "a\x00b"), ("x-bad\r\nx-injected", "1")])
def test_cr_lf_and_nul_in_headers_are_refused_before_anything_is_sent(header: tuple[str, str]):
    async def scenario():
        received: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read(65536))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = LeanTransport()
        request = httpx.Request("POST", f"http://127.0.0.1:{port}/", headers=[header], content=b"x",
                                extensions={"timeout": {"read": 2, "connect": 2}})
        with pytest.raises(httpx.LocalProtocolError) as caught:
            await transport.handle_async_request(request)
        await asyncio.sleep(0.1)
        await transport.aclose()
        server.close()
        return caught.value, request, received

    error, request, received = asyncio.run(scenario())
    assert error.request is request
    assert received == []  # not a byte went out: no connection was even opened


def test_transport_errors_carry_their_request():
    async def scenario(port: int):
        transport = LeanTransport()
        errors = []
        for url, read in ((f"http://127.0.0.1:{port}/slow", 0.2), ("http://127.0.0.1:9/nothing-listens-here", 5.0)):
            request = httpx.Request("GET", url, extensions={"timeout": {"read": read, "connect": 2}})
            try:
                await transport.handle_async_request(request)
            except httpx.TransportError as exc:
                errors.append((exc, request))
        await transport.aclose()
        return errors

    with Server() as server:
        errors = asyncio.run(scenario(server.port))
    assert [type(exc) for exc, _ in errors] == [httpx.ReadTimeout, httpx.ConnectError]
    assert all(exc.request is request for exc, request in errors)


# ----------------------------------------------------------------------------- scripted bytes
# As httpcore's tests/_async/test_http11.py does with its mock backend: the transport gets a
# connector that hands it connections whose peer is a script (exact bytes, fed in the pieces
# given), so the protocol is tested byte for byte without a server.

CLOSE = b"<close>"  # in a script: the peer closes the connection here


class ScriptedTransport(asyncio.Transport):
    """The peer of one connection: each request written gets the next scripted reply, piece by piece."""

    def __init__(self, protocol: asyncio.Protocol, replies: list[list[bytes]], stall_writes: bool):
        super().__init__()
        self.protocol, self.replies, self.stall_writes = protocol, replies, stall_writes
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))
        if self.stall_writes:
            self.protocol.pause_writing()  # the peer's window is shut: nothing more goes out
            return
        pieces = self.replies.pop(0) if self.replies else []
        loop = asyncio.get_running_loop()
        for piece in pieces:  # one piece per read, in order
            loop.call_soon(self._deliver, piece)

    def _deliver(self, piece: bytes) -> None:
        if self.closed:
            return
        if piece == CLOSE:
            self.close()
        else:
            self.protocol.data_received(piece)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class ScriptedNetwork:
    """A connector for LeanTransport: connection i plays ``scripts[i]`` (a list of replies)."""

    def __init__(self, *scripts: list[list[bytes]], stall_writes: bool = False):
        self.scripts = list(scripts)
        self.stall_writes = stall_writes
        self.transports: list[ScriptedTransport] = []

    async def connect(self, factory, host: str, port: int, tls):
        protocol = factory()
        transport = ScriptedTransport(protocol, self.scripts.pop(0) if self.scripts else [], self.stall_writes)
        self.transports.append(transport)
        protocol.connection_made(transport)
        return protocol

    @property
    def written(self) -> list[bytes]:
        return [data for t in self.transports for data in t.written]


def scripted(network: ScriptedNetwork, *requests: httpx.Request, limit: int = 1024) -> list[tuple[int, bytes]]:
    """Send ``requests`` one after the other over a LeanTransport on ``network``; (status, body) each."""
    async def go() -> list[tuple[int, bytes]]:
        transport = LeanTransport(limit, connect=network.connect)
        out = []
        for request in requests:
            response = await transport.handle_async_request(request)
            assert isinstance(response.stream, httpx.AsyncByteStream)
            try:
                body = b"".join([chunk async for chunk in response.stream])
            finally:
                await response.aclose()
            out.append((response.status_code, body))
        await transport.aclose()
        return out
    return asyncio.run(go())


def req(content: bytes = b"abc", read: float = 5.0, write: float = 5.0,
        headers: dict[str, str] | None = None) -> httpx.Request:
    return httpx.Request("POST", "http://upstream.test/v1/x?a=1", content=content, headers=headers,
                         extensions={"timeout": {"read": read, "write": write, "connect": 1, "pool": 0.5}})


OK5 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def test_scripted_exact_request_bytes_and_keep_alive():
    network = ScriptedNetwork([[OK5], [OK5]])
    answers = scripted(network, req(headers={"x-key": "v"}), req(b"second"))
    assert answers == [(200, b"hello"), (200, b"hello")]
    assert len(network.transports) == 1  # the second request reused the connection
    assert network.written == [
        b"POST /v1/x?a=1 HTTP/1.1\r\nHost: upstream.test\r\nx-key: v\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /v1/x?a=1 HTTP/1.1\r\nHost: upstream.test\r\nContent-Length: 6\r\n\r\nsecond",
    ]


def test_scripted_chunked_body_fed_one_byte_per_read():
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    network = ScriptedNetwork([[reply[i:i + 1] for i in range(len(reply))], [OK5]])
    assert scripted(network, req(), req()) == [(200, b"hello, world"), (200, b"hello")]
    assert len(network.transports) == 1


def test_scripted_body_delimited_by_the_end_of_the_connection():
    network = ScriptedNetwork([[b"HTTP/1.1 200 OK\r\n\r\n", b"until ", b"the end", CLOSE]], [[OK5]])
    assert scripted(network, req(), req()) == [(200, b"until the end"), (200, b"hello")]
    assert len(network.transports) == 2  # that connection cannot carry another answer


def test_scripted_connection_close_is_not_reused():
    network = ScriptedNetwork([[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"]], [[OK5]])
    assert scripted(network, req(), req()) == [(200, b"ok"), (200, b"hello")]
    assert len(network.transports) == 2


def test_scripted_informational_answers_are_skipped():
    network = ScriptedNetwork([[b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                + OK5]])
    assert scripted(network, req()) == [(200, b"hello")]


@pytest.mark.parametrize(("reply", "error"), [
    ([b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 << 10) + b"\r\n\r\n"], httpx.RemoteProtocolError),
    ([b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 8000], httpx.RemoteProtocolError),  # never ends, still capped
    ([b"HTTQ/9 what\r\n\r\n"], httpx.RemoteProtocolError),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", CLOSE], httpx.ReadError),
    ([b"HTTP/1.1 200 OK\r\nContent-Len", CLOSE], httpx.ReadError),
])
def test_scripted_bad_answers_are_errors_that_carry_their_request(reply: list[bytes], error: type[Exception]):
    request = req()
    with pytest.raises(error) as caught:
        scripted(ScriptedNetwork([reply]), request)
    assert isinstance(caught.value, httpx.RequestError) and caught.value.request is request


def test_scripted_a_request_the_upstream_does_not_take_is_a_write_timeout():
    request = req(read=30.0, write=0.2)
    start = time.monotonic()
    with pytest.raises(httpx.WriteTimeout) as caught:
        scripted(ScriptedNetwork([[]], stall_writes=True), request)
    assert time.monotonic() - start < 5  # the write timeout, not the 30 s read timeout
    assert caught.value.request is request


def test_scripted_a_body_never_closed_gives_its_pool_slot_back(caplog: pytest.LogCaptureFixture):
    # one slot per origin; the first answer is dropped unread and unclosed
    network = ScriptedNetwork([[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"]], [[OK5]])

    async def go() -> tuple[int, bytes]:
        transport = LeanTransport(1, connect=network.connect)
        response = await transport.handle_async_request(req())
        del response
        gc.collect()
        second = await transport.handle_async_request(req())  # PoolTimeout (0.5 s) if the slot were lost
        body = await second.aread()
        await second.aclose()
        await transport.aclose()
        return second.status_code, body

    with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
        assert asyncio.run(go()) == (200, b"hello")
    assert network.transports[0].closed  # the abandoned connection was aborted, not reused
    assert "dropped without being closed" in caplog.text


def sent_as_bytes(network: ScriptedNetwork, *calls: tuple[str, str, object, bytes]) -> list[tuple[int, bytes]]:
    """``LeanTransport.send_bytes`` for each (method, url, headers, body), one after the other."""
    async def go() -> list[tuple[int, bytes]]:
        transport = LeanTransport(8, connect=network.connect)
        out = []
        for method, url, headers, body in calls:
            response = await transport.send_bytes(method, url, headers, body,  # type: ignore[arg-type]
                                                  {"read": 5.0, "write": 5.0, "connect": 1.0, "pool": 0.5})
            assert response.request.url == httpx.URL(url)  # a request stands for it, errors included
            out.append((response.status_code, await response.aread()))
            await response.aclose()
        await transport.aclose()
        return out
    return asyncio.run(go())


def test_send_bytes_writes_one_content_length_and_the_same_head_each_time():
    shared = httpx.Headers({"content-type": "application/json", "authorization": "Bearer k"})
    network = ScriptedNetwork([[OK5], [OK5], [OK5]])
    answers = sent_as_bytes(network, ("POST", "http://upstream.test/v1/x", shared, b"{}"),
                            ("POST", "http://upstream.test/v1/x", shared, b'{"a":1}'),
                            ("POST", "http://upstream.test/v1/x", shared, b""))
    assert answers == [(200, b"hello")] * 3
    assert len(network.transports) == 1  # kept alive
    head = (b"POST /v1/x HTTP/1.1\r\ncontent-type: application/json\r\nauthorization: Bearer k\r\n"
            b"Host: upstream.test\r\n")
    assert network.written == [head + b"content-length: 2\r\n\r\n{}", head + b"content-length: 7\r\n\r\n{\"a\":1}",
                               head + b"content-length: 0\r\n\r\n"]
    for data in network.written:
        assert data.lower().count(b"content-length") == 1


def test_send_bytes_refuses_cr_lf_in_a_header_before_sending():
    network = ScriptedNetwork([[OK5]])
    bad = httpx.Headers({"x-evil": "a\r\nX-Smuggled: 1"})
    with pytest.raises(httpx.LocalProtocolError):
        sent_as_bytes(network, ("POST", "http://upstream.test/v1/x", bad, b"{}"))
    assert network.written == []


def test_send_bytes_keeps_a_given_content_length_and_errors_carry_a_request():
    own = httpx.Headers({"content-length": "2"})
    network = ScriptedNetwork([[OK5], [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", CLOSE]])
    assert sent_as_bytes(network, ("POST", "http://upstream.test/v1/y", own, b"{}")) == [(200, b"hello")]
    assert network.written == [b"POST /v1/y HTTP/1.1\r\ncontent-length: 2\r\nHost: upstream.test\r\n\r\n{}"]
    with pytest.raises(httpx.TransportError) as caught:
        sent_as_bytes(network, ("POST", "http://upstream.test/v1/y", own, b"{}"))
    assert caught.value.request.url == httpx.URL("http://upstream.test/v1/y")


def test_send_bytes_to_a_scheme_it_does_not_speak_is_an_error_that_carries_a_request():
    network = ScriptedNetwork([[OK5]])
    with pytest.raises(httpx.UnsupportedProtocol) as caught:
        sent_as_bytes(network, ("POST", "ftp://upstream.test/v1/x", httpx.Headers({}), b"{}"))
    assert caught.value.request.url == httpx.URL("ftp://upstream.test/v1/x")
    assert network.written == []
