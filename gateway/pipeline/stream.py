"""Relaying a streamed answer event by event, and settling it however it ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

import httpx

from ..core.sse import MAX_EVENT_BYTES, EventTooLarge
from ..core.usage import Answer, Usage
from ..routing.dispatch import UpstreamAnswer
from ..upstream.client import async_stream
from .context import CLIENT_CLOSED, Admitted, Disconnect, Exchange
from .sse import completion_as_sse, error_event

Settle = Callable[[Admitted, UpstreamAnswer, Usage], Awaitable[None]]


async def relay(admitted: Admitted, opened: UpstreamAnswer, guard: Disconnect,
                settle: Settle) -> AsyncGenerator[bytes, None]:
    """The upstream's stream through the adapter's relay; an error event if it breaks off.

    One item per upstream read that completed events (the send Falcon makes per item costs more
    than the relaying itself); nothing per event but the adapter's ``feed``.
    """
    outcome = admitted.exchange.outcome
    translator = opened.adapter.stream_relay(admitted.call)
    feed = translator.feed
    content = outcome.content  # set with observability.capture_content: the answer's text is kept
    delivered = False  # the stream's last event went out: a client leaving now (Codex does, at once) got it all
    try:
        async for chunk in async_stream(opened.response):
            events = feed(chunk)
            if events:  # the events of one read go out in one send
                if outcome.upstream_s is None:
                    outcome.upstream_s = time.perf_counter() - outcome.started
                if content is not None:
                    content.add_events(events)
                yield events[0] if len(events) == 1 else b"".join(events)
                delivered = translator.done
        if not translator.done:
            outcome.error_code = "stream_interrupted"
            yield error_event("The provider's stream ended before it was complete.")
    except asyncio.CancelledError:
        if not guard.absorb():
            raise
        if not delivered:
            outcome.status = CLIENT_CLOSED
    except httpx.TimeoutException:
        outcome.error_code = "upstream_timeout"
        yield error_event("The provider stopped sending in time.", code="upstream_timeout")
    except httpx.HTTPError:
        outcome.error_code = "stream_interrupted"
        yield error_event("The provider's stream broke off.")
    except EventTooLarge:
        outcome.error_code = "stream_interrupted"
        yield error_event(f"The provider sent an event larger than {MAX_EVENT_BYTES >> 20} MB.")
    finally:
        guard.close()
        if guard.fired and outcome.status == 200 and not delivered:
            outcome.status = CLIENT_CLOSED  # the client left while the server was sending
        with contextlib.suppress(Exception):
            await opened.response.aclose()
        await asyncio.shield(settle(admitted, opened, translator.final_usage()))


def whole_as_stream(admitted: Admitted, opened: UpstreamAnswer, answer: Answer, guard: Disconnect,
                    settle: Settle) -> AsyncGenerator[bytes, None]:
    """A whole answer to a stream request, sent as the events of a stream."""
    exchange = admitted.exchange
    exchange.outcome.upstream_s = time.perf_counter() - exchange.outcome.started
    if exchange.outcome.content is not None:
        exchange.outcome.content.response = answer.data
    return one_send(exchange, completion_as_sse(answer.data, admitted.call.wants_usage), guard,
                    lambda: settle(admitted, opened, answer.usage))


async def one_send(exchange: Exchange, events: bytes, guard: Disconnect,
                   settle: Callable[[], Awaitable[None]]) -> AsyncGenerator[bytes, None]:
    """Events the gateway has whole (a whole answer, a cache hit) sent as one stream, settled
    however the sending ends (the client may leave meanwhile)."""
    try:
        yield events
    except asyncio.CancelledError:
        if not guard.absorb():
            raise
        exchange.outcome.status = CLIENT_CLOSED
    finally:
        guard.close()
        if guard.fired and exchange.outcome.status == 200:
            exchange.outcome.status = CLIENT_CLOSED
        await asyncio.shield(settle())
