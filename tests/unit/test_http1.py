"""The lean HTTP/1.1 transport against real local servers: TLS, chunked bodies, keep-alive, timeouts."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from gateway.http1 import LeanTransport


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
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> "Server":
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
                length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
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
