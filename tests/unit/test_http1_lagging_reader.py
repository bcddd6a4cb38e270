"""The lean transport hands a reader that fell behind everything buffered at once (so
a busy gateway relays the events that piled up in one send, not one send per upstream read),
in order, and the connection is still kept alive afterwards."""

from __future__ import annotations

import asyncio

import httpx

from gateway.upstream.transports.lean import LeanTransport

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENTS = [f"data: {i}\n\n".encode() for i in range(3)]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def scenario() -> tuple[list[bytes], list[bytes], int]:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            writer.write(HEAD)
            for event in EVENTS:
                await writer.drain()
                await asyncio.sleep(0.02)  # separate reads on the gateway's side
                writer.write(chunk(event))
            writer.write(b"0\r\n\r\n")

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = LeanTransport()
    received: list[list[bytes]] = []
    try:
        for lag in (0.3, 0.0):
            request = httpx.Request("GET", f"http://127.0.0.1:{port}/",
                                    extensions={"timeout": {"read": 5, "connect": 2}})
            response = await transport.handle_async_request(request)
            await asyncio.sleep(lag)  # the reader is late: every event is in already
            pieces = [piece async for piece in response.stream]  # type: ignore[union-attr]
            await response.aclose()
            received.append(pieces)
    finally:
        await transport.aclose()
        server.close()
    return received[0], received[1], connections


def test_a_late_reader_gets_the_buffered_events_at_once_and_the_connection_is_reused() -> None:
    late, on_time, connections = asyncio.run(scenario())
    assert late == [b"".join(EVENTS)]  # one piece, in order, nothing lost
    assert b"".join(on_time) == b"".join(EVENTS)
    assert len(on_time) == len(EVENTS)  # a reader keeping up gets each read as it comes
    assert connections == 1
