"""Headers of one call on top of a shared request head (an attempt's ``traceparent``): written
after the shared headers, checked like them, and without touching the head kept for the rest."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.upstream.transports.lean import LeanTransport
from tests.unit.test_http1 import OK5, ScriptedNetwork

URL = "http://upstream.test/v1/x"
TIMEOUTS = {"read": 5.0, "write": 5.0, "connect": 1.0, "pool": 0.5}


def send(network: ScriptedNetwork, headers: httpx.Headers,
         *extras: list[tuple[str, str]] | None) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        transport = LeanTransport(8, connect=network.connect)
        out = []
        try:
            for extra in extras:
                response = await transport.send_bytes("POST", URL, headers, b"{}", TIMEOUTS, extra)
                out.append((response.status_code, await response.aread()))
                await response.aclose()
        finally:
            await transport.aclose()
        return out
    return asyncio.run(go())


def test_extra_headers_go_after_the_shared_head_of_their_call_only():
    shared = httpx.Headers({"authorization": "Bearer k"})
    network = ScriptedNetwork([[OK5], [OK5], [OK5]])
    first = [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("tracestate", "a=b")]
    second = [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01")]
    assert send(network, shared, first, second, None) == [(200, b"hello")] * 3
    head = b"POST /v1/x HTTP/1.1\r\nauthorization: Bearer k\r\nHost: upstream.test\r\n"
    end = b"content-length: 2\r\n\r\n{}"
    assert network.written == [
        head + b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\ntracestate: a=b\r\n" + end,
        head + b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01\r\n" + end,
        head + end,  # the kept head never took in a call's own headers
    ]


@pytest.mark.parametrize("extra", [[("tracestate", "a=b\r\nx-smuggled: 1")], [("traceparent", "00\n")],
                                   [("x-bad\r\nx-injected", "1")], [("tracestate", "a\x00b")],
                                   [("tracestate", "caf\u00e9\u2603")]])
def test_extra_headers_with_line_breaks_nul_or_no_latin_1_are_refused_before_sending(extra):
    network = ScriptedNetwork([[OK5]])
    with pytest.raises(httpx.LocalProtocolError) as caught:
        send(network, httpx.Headers({"authorization": "Bearer k"}), extra)
    assert caught.value.request.url == httpx.URL(URL)
    assert network.written == []
