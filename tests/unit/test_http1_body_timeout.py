"""The lean transport's read timeout while a body streams (one timer per body, moved
lazily, instead of one per chunk): it fires after ``read`` s without data, never while chunks
keep coming, and a connection kept alive after a body carries no stale timer into its next request."""

from __future__ import annotations

import asyncio
import time

import httpx

from gateway.upstream.transports.lean import LeanTransport

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def serve(gaps: list[float], writer: asyncio.StreamWriter, then_stall: bool) -> None:
    writer.write(HEAD)
    for gap in gaps:
        await asyncio.sleep(gap)
        writer.write(chunk(b"data: x\n\n"))
    if then_stall:
        await asyncio.sleep(5)
    writer.write(b"0\r\n\r\n")


async def scenario(gaps: list[float], then_stall: bool, read: float) -> tuple[list[float], BaseException | None, float]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                return
            await serve(gaps, writer, then_stall)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = LeanTransport()
    arrivals: list[float] = []
    error: BaseException | None = None
    start = time.monotonic()
    request = httpx.Request("GET", f"http://127.0.0.1:{port}/", extensions={"timeout": {"read": read, "connect": 2}})
    response = await transport.handle_async_request(request)
    try:
        async for _ in response.stream:  # type: ignore[union-attr]
            arrivals.append(time.monotonic() - start)
    except httpx.ReadTimeout as exc:
        error = exc
    finally:
        await response.aclose()
    elapsed = time.monotonic() - start
    await transport.aclose()
    server.close()
    return arrivals, error, elapsed


def test_chunks_closer_than_the_timeout_never_time_out():
    # 8 chunks 0.12 s apart under a 0.3 s timeout: ~1 s of body, three times the timeout
    arrivals, error, _ = asyncio.run(scenario([0.12] * 8, then_stall=False, read=0.3))
    assert error is None and len(arrivals) == 8


def test_a_body_that_stalls_times_out_after_the_read_timeout():
    arrivals, error, elapsed = asyncio.run(scenario([0.0, 0.1, 0.1], then_stall=True, read=0.4))
    assert isinstance(error, httpx.ReadTimeout) and error.request is not None
    assert len(arrivals) == 3
    assert arrivals[-1] + 0.35 < elapsed < arrivals[-1] + 1.5  # measured from the last chunk, not the first


def test_a_kept_alive_connection_carries_no_stale_timer():
    read = 0.3
    async def twice() -> list[int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                writer.write(HEAD + chunk(b"data: one\n\n") + b"0\r\n\r\n")

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = LeanTransport()
        got = []
        for _ in range(2):
            request = httpx.Request("GET", f"http://127.0.0.1:{port}/",
                                    extensions={"timeout": {"read": read, "connect": 2}})
            response = await transport.handle_async_request(request)
            got.append(len(b"".join([piece async for piece in response.stream])))  # type: ignore[union-attr]
            await response.aclose()
            await asyncio.sleep(read + 0.1)  # past the first body's deadline, connection idle in the pool
        await transport.aclose()
        server.close()
        return got

    assert asyncio.run(twice()) == [11, 11]
