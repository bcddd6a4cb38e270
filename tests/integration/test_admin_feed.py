"""The live request log's per-listener queue (socket-free): bounded, and a listener that does not
keep up loses rows, counted, and is told how many before its next row."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from gateway.api.admin.feed import Listener, events
from gateway.store.values import LedgerRow


def row(n: int) -> LedgerRow:
    return LedgerRow(time=1_700_000_000.0 + n, request_id=f"r{n}", client_id="app", provider="fake",
                     model="m", key_label="fake#1", status=200)


def dropped_total() -> float:
    return REGISTRY.get_sample_value("gateway_admin_stream_dropped_total") or 0.0


def test_a_slow_listener_loses_rows_and_is_told() -> None:
    async def run() -> tuple[list[bytes], list[str]]:
        listener = Listener(size=2)
        before = dropped_total()
        for n in range(5):
            listener.offer(row(n))
        assert listener.queue.qsize() == 2 and listener.dropped == 3 and dropped_total() - before == 3
        closed: list[str] = []
        stream = events(listener, lambda: closed.append("closed"), keepalive_s=0.05)
        got = [await anext(stream) for _ in range(5)]  # hello, dropped + row, row, keep-alive
        await stream.aclose()
        return got, closed

    got, closed = asyncio.run(run())
    assert got[0].startswith(b":")
    assert got[1] == b'event: dropped\ndata: {"dropped":3}\n\n'
    assert got[2].startswith(b"data: ") and b'"request_id":"r0"' in got[2]
    assert b'"request_id":"r1"' in got[3] and b"event: dropped" not in got[3]
    assert got[4] == b": keep-alive\n\n"
    assert closed == ["closed"]
