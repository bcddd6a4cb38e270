"""One request's accounting context, from authentication to the record, and what the pipeline returns."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from ..config.snapshot import Snapshot
from ..core.call import Call
from ..core.targets import ClientSpec, Route
from ..core.usage import Answer
from ..limits.admission import Admission
from ..observability.usage import Outcome

CLIENT_CLOSED = 499  # nginx's status for a client that left before its answer


@dataclass(slots=True)
class Exchange:
    """Everything the pipeline knows about one request; the one thing its stages pass along.

    ``snap`` is the snapshot the request started on (it keeps it to the end); ``outcome`` is
    what gets recorded (metrics and the access log line) exactly once, however the request ends.
    """

    snapshot: Snapshot
    client: ClientSpec
    outcome: Outcome
    call: Call | None = None
    route: Route | None = None
    admission: Admission | None = None
    est_tokens: int = 0
    native: bool = False  # the answer is in ``call.dialect``'s own protocol (same-dialect pass-through), not OpenAI's


class Disconnect(Protocol):
    """Tells the pipeline that the client left (the HTTP layer's ``DisconnectGuard``).

    ``fired``: the client is gone; ``absorb()`` undoes the cancellation it caused (True if it
    did); ``close()`` stops watching.
    """

    fired: bool

    def absorb(self) -> bool: ...

    def close(self) -> None: ...


# A whole answer, already settled and recorded: OpenAI-shape JSON (``data``) and what it used (``usage``).
Whole = Answer


class EventStream:
    """A streamed answer: OpenAI-shape SSE events (bytes), then the cleanup that settles and records.

    Iterate it; ``close()`` (which Falcon calls when the response ends, however it ends) runs the
    cleanup at once: the upstream is closed and the usage counted even if the client left.
    """

    __slots__ = ("_generator",)

    def __init__(self, generator: AsyncGenerator[bytes, None]):
        self._generator = generator

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._generator

    async def __anext__(self) -> bytes:
        # iteration goes through ``__aiter__``; this makes the wrapper an ``AsyncIterator[bytes]``
        return await self._generator.__anext__()

    async def close(self) -> None:
        await self._generator.aclose()
