"""OpenTelemetry traces: what the request path calls, and how a worker starts and stops tracing.

Tracing is off unless ``observability.otlp`` or the ``OTEL_EXPORTER_OTLP_*`` environment names
a collector (``otlp.py``). Then each worker process, in its ASGI lifespan start-up (after the
fork: an exporter's thread does not survive one), builds its own tracer provider, batch span
processor and OTLP/HTTP exporter (``start_tracing``: OpenTelemetry is imported only then, so a
gateway without tracing never loads it). Off, the request path does nothing but ``is None``
checks: ``Outcome.trace`` (the request's span) stays None and nothing else is built.

The spans, named and attributed by the OpenTelemetry GenAI semantic conventions
(``spans.py`` builds them):

- one per request, kind SERVER, ``{gen_ai.operation.name} {gen_ai.request.model}``
  (``chat gpt-4o``), a child of the client's span when the request carries a W3C
  ``traceparent``; ended when the request is recorded, so a stream's span ends once the stream
  is settled and its usage known;
- one per upstream attempt, kind CLIENT, named for the target's model; the upstream request
  carries a ``traceparent`` naming it (and the client's ``tracestate``); a failed attempt says
  why in ``gateway.retry.reason`` (``rate_limited``, ``timeout``, ``server_error``, …);
- one per MCP tool call, kind INTERNAL, ``execute_tool {tool}``: see ``tool_call``.

No prompt, answer, tool argument or key is put in any span unless the config says
``observability.capture_content: true`` (read per request, applied live).

For the MCP code, the one call to make around each tool call it runs for a request (as the tool
loop does: ``pipeline/tool_steps.py``)::

    from gateway.observability.traces import tool_call

    with tool_call(exchange.trace, tool_name, call_id=call_id, arguments=args) as span:
        result = await service.call_tool(...)
        span.result(result_as_json, is_error=result.get("isError") is True)

``span.meta()`` gives the span's W3C context (``traceparent``, ``tracestate``) for a caller that
passes it on in the request's ``params._meta``; the tool calls do not pass it to MCP servers yet.
``exchange.trace`` is None when tracing is off: ``tool_call`` then returns a shared object that
does nothing (``meta()`` is empty), so the caller needs no branch of its own.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .otlp import OtlpSettings
from .trace_types import AttemptTrace, Finished, RequestTrace, ToolCall, Tracing

__all__ = ["NO_TOOL_CALL", "AttemptTrace", "Finished", "RequestTrace", "ToolCall", "Tracing", "start_tracing",
           "tool_call"]


def start_tracing(settings: OtlpSettings) -> Tracing:
    """The tracer for this worker (call it in the ASGI lifespan start-up, after the fork)."""
    from .spans import SdkTracing  # OpenTelemetry is loaded only here

    return SdkTracing(settings)


class _NoToolCall:
    """``tool_call``'s answer when tracing is off: does nothing."""

    def meta(self) -> dict[str, str]:
        return {}

    def result(self, value: Any, is_error: bool = False) -> None:
        return None

    def __enter__(self) -> ToolCall:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None


NO_TOOL_CALL: ToolCall = _NoToolCall()


def tool_call(trace: RequestTrace | None, name: str, *, call_id: str | None = None, arguments: Any = None,
              server: tuple[str, int] | None = None) -> ToolCall:
    """A span ``execute_tool {name}`` under the request's span (``exchange.trace``), or nothing when
    tracing is off. ``call_id``: the model's tool call id; ``arguments``: recorded only with
    ``capture_content``; ``server``: the MCP server's (host, port) when it is reached over HTTP."""
    if trace is None:
        return NO_TOOL_CALL
    return trace.tool_call(name, call_id, arguments, server)
