"""The shapes of the request path's spans (``traces.py`` says what they are, ``spans.py`` builds
them): Protocols only, so the request path never imports OpenTelemetry."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any, Protocol

from ..core.call import Call
from ..core.targets import Target
from ..core.usage import Usage
from .otlp import OtlpSettings


class Finished(Protocol):
    """What a request span reads from the request's record when it ends (``usage.Outcome``)."""

    status: int
    error_code: str | None
    target: Target | None
    key_label: str | None
    usage: Usage | None
    cost_usd: float
    cache: str | None
    stream: bool
    upstream_s: float | None


class ToolCall(Protocol):
    """One MCP tool call's span, as a context manager (an exception leaving it marks it failed)."""

    def meta(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) naming this span, for the request's ``params._meta``."""
        ...

    def result(self, value: Any, is_error: bool = False) -> None:
        """The tool's result (recorded only with ``capture_content``); ``is_error``: the tool said it failed."""
        ...

    def __enter__(self) -> ToolCall: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class AttemptTrace(Protocol):
    """One upstream attempt's span."""

    headers: list[tuple[str, str]]  # what the upstream request carries: traceparent (and tracestate)

    def responded(self, status: int) -> None:
        """The upstream's status line is in."""

    def failed(self, error_type: str, reason: str | None = None) -> None:
        """The attempt got no answer (``reason``: why, when another attempt may follow); ends the span."""

    def end(self, usage: Usage | None) -> None:
        """The answer was read and settled (``usage``: what it used, None if it was unreadable)."""


class RequestTrace(Protocol):
    """One request's span, from authentication to its record."""

    def called(self, call: Call) -> None:
        """The request's call is known: the span's name and request attributes."""

    def answered(self, data: dict[str, Any]) -> None:
        """A whole answer (OpenAI's shape, or the provider's own when passed through)."""

    def watch(self, events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        """``events`` passed on, read for finish reasons (and the answer, with ``capture_content``)."""
        ...

    def attempt(self, target: Target, key_label: str, call: Call) -> AttemptTrace:
        """A child span for one upstream attempt on ``target`` with the key labelled ``key_label``."""
        ...

    def tool_call(self, name: str, call_id: str | None, arguments: Any,
                  server: tuple[str, int] | None) -> ToolCall:
        """A child span for one MCP tool call (use the module's ``tool_call``)."""
        ...

    def end(self, outcome: Finished) -> None:
        """The request was recorded: its status, usage and cost; the span ends."""


class Tracing(Protocol):
    """One worker's tracer provider and exporter."""

    settings: OtlpSettings

    def request(self, endpoint: str, request_id: str, client_id: str, arrived: float, capture: bool,
                traceparent: str | None, tracestate: str | None) -> RequestTrace:
        """The span of a request that arrived at ``arrived`` (epoch seconds), authenticated as
        ``client_id``; a child of ``traceparent`` when that is a valid W3C trace context."""
        ...

    def shutdown(self) -> None:
        """Export what is still queued (bounded in time) and stop the exporter's thread."""
