"""The request's span over every round of the tool loop (``tool_loop.py``): each round is recorded
as a request of its own, and each record would end the span; ``LoopTrace`` keeps it open until
the loop ends, then ends it with the last round's record and the usage and cost of every round."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from ..core.call import Call
from ..core.targets import Target
from ..core.usage import Usage
from ..observability.trace_types import AttemptTrace, Finished, RequestTrace, ToolCall


def added(a: Usage, b: Usage) -> Usage:
    """The usage of two rounds together."""
    return Usage(a.prompt_tokens + b.prompt_tokens, a.completion_tokens + b.completion_tokens, a.exact and b.exact,
                 a.cache_read_tokens + b.cache_read_tokens, a.cache_write_tokens + b.cache_write_tokens,
                 a.reasoning_tokens + b.reasoning_tokens)


@dataclass(slots=True)
class _Finished:
    """What the request's span ends with: the last round's record, every round's usage and cost."""

    status: int
    error_code: str | None
    target: Target | None
    key_label: str | None
    usage: Usage | None
    cost_usd: float
    cache: str | None
    stream: bool
    upstream_s: float | None


class LoopTrace:
    """The request's span over every round: each round's record ends it no more; the loop does,
    with its last round's record and the usage and cost of them all."""

    def __init__(self, inner: RequestTrace):
        self.inner = inner
        self.last: Finished | None = None
        self.usage: Usage | None = None
        self.cost_usd = 0.0

    def called(self, call: Call) -> None:
        self.inner.called(call)

    def answered(self, data: dict[str, Any]) -> None:
        self.inner.answered(data)

    def watch(self, events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        return self.inner.watch(events)

    def attempt(self, target: Target, key_label: str, call: Call) -> AttemptTrace:
        return self.inner.attempt(target, key_label, call)

    def tool_call(self, name: str, call_id: str | None, arguments: Any, server: tuple[str, int] | None) -> ToolCall:
        return self.inner.tool_call(name, call_id, arguments, server)

    def end(self, outcome: Finished) -> None:
        self.last = outcome
        self.cost_usd += outcome.cost_usd
        if outcome.usage is not None:
            self.usage = outcome.usage if self.usage is None else added(self.usage, outcome.usage)

    def finish(self) -> None:
        last, self.last = self.last, None
        if last is not None:
            self.inner.end(_Finished(last.status, last.error_code, last.target, last.key_label, self.usage,
                                     self.cost_usd, last.cache, last.stream, last.upstream_s))
