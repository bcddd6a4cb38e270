"""What the pipeline's stages hand each other for one request, and what it returns.

``Exchange``: the request from authentication on (its snapshot, client and what gets recorded).
``Admitted``: a request admitted under its client's limits and budget, with its call and route:
what ``Pipeline.admit`` returns and ``Pipeline.dispatch`` takes. The answer is an ``Answer``
(whole, already settled and recorded) or a ``Stream`` (settled and recorded when it closes).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from ..config.snapshot import Snapshot
from ..core.call import Call
from ..core.targets import ClientSpec, Route
from ..guardrails.engine import RequestGuard
from ..limits.admission import Admission
from ..observability.traces import RequestTrace
from ..observability.usage import Outcome

CLIENT_CLOSED = 499  # nginx's status for a client that left before its answer
EVENT_STREAM = "text/event-stream"


@dataclass(slots=True)
class Exchange:
    """One request from authentication to its record.

    ``snapshot`` is the snapshot the request started on (it keeps it to the end); ``outcome`` is
    what gets recorded (metrics and the access log line) exactly once, however the request ends;
    ``native`` is set once an upstream answered when that answer is in the client's own protocol
    (same-dialect pass-through), not OpenAI's.
    """

    snapshot: Snapshot
    client: ClientSpec
    outcome: Outcome
    native: bool = False

    @property
    def trace(self) -> RequestTrace | None:
        """The request's span (None when tracing is off): the parent of its tool calls'
        (``observability.traces.tool_call``)."""
        return self.outcome.trace


@dataclass(slots=True)
class Admitted:
    """A request admitted under its client's limits and budget: its call (as the input guards left
    it), its resolved route, what it holds (``admission``, released when it is settled), its token
    estimate, and its guardrails (None: no guard applies; ``pipeline/guard.py``)."""

    exchange: Exchange
    call: Call
    route: Route
    admission: Admission
    est_tokens: int
    guardrails: RequestGuard | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The client's rate-limit headers, which every answer from here on carries (errors too)."""
        return self.admission.headers


class Disconnect(Protocol):
    """Tells the pipeline that the client left (the HTTP layer's ``DisconnectGuard``).

    ``fired``: the client is gone; ``absorb()`` undoes the cancellation it caused (True if it
    did); ``close()`` stops watching.
    """

    fired: bool

    def absorb(self) -> bool: ...

    def close(self) -> None: ...


class Closes(Protocol):
    """What a stream may be made from: something to close with it."""

    async def close(self) -> None: ...


class Stream:
    """A streamed answer: its bytes as they come (SSE events, or audio, ...), then the cleanup that
    settles and records the request.

    Iterate it; ``close()`` (which Falcon calls when the response ends, however it ends) runs the
    cleanup at once: the upstream is closed and the usage counted even if the client left.
    """

    __slots__ = ("_generator", "_source", "content_type")

    def __init__(self, generator: AsyncGenerator[bytes, None], content_type: str = EVENT_STREAM,
                 source: Closes | None = None):
        self._generator = generator
        self._source = source  # a stream this one is made from (``translated``): closed with it
        self.content_type = content_type

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._generator

    async def __anext__(self) -> bytes:
        # iteration goes through ``__aiter__``; this makes the wrapper an ``AsyncIterator[bytes]``
        return await self._generator.__anext__()

    async def close(self) -> None:
        try:
            await self._generator.aclose()
        finally:
            if self._source is not None:
                await self._source.close()


def translated(source: Stream, feed: Callable[[bytes], list[bytes]], end: Callable[[], list[bytes]],
               content_type: str = EVENT_STREAM) -> Stream:
    """``source`` with each item rewritten by ``feed``, then ``end()``'s items; closing it closes
    ``source`` too, so the request is settled and recorded as it would be untranslated."""

    async def run() -> AsyncGenerator[bytes, None]:
        async for item in source:
            out = feed(item)
            if out:  # what one item became, sent at once as the item came (one write, not one per event)
                yield out[0] if len(out) == 1 else b"".join(out)
        tail = end()
        if tail:
            yield b"".join(tail)

    return Stream(run(), content_type, source)
