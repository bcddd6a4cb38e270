"""The spans of ``traces.py``, built on the OpenTelemetry SDK: a tracer provider per worker with a
batch span processor and the OTLP/HTTP (protobuf) exporter.

Imported only by ``traces.start_tracing``. The batch processor queues ended spans and exports
them from its own thread, so the request path never waits on the collector; when the queue is
full (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048 by default) spans are dropped, never the request
delayed. The SDK's own ``OTEL_BSP_*`` and ``OTEL_TRACES_SAMPLER`` variables apply (process
environment). Attribute names: the GenAI semantic conventions (``gen_ai.*``), HTTP's
``http.response.status_code``, ``server.address``/``server.port``, ``error.type``, and the
gateway's own under ``gateway.*``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any

import orjson
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from .. import __version__
from ..core.call import Call
from ..core.targets import Target
from ..core.usage import Usage
from . import trace_content as content
from .otlp import OtlpSettings
from .trace_names import operation_name, provider_name, server_of
from .trace_types import AttemptTrace, Finished, RequestTrace, ToolCall

EXPORT_TIMEOUT_S = 5.0  # one export (its retries included); the batch processor's thread waits, never a request
FLUSH_AT_SHUTDOWN_MS = 3000  # what is still queued at shutdown gets this long to go out
MAX_NAME = 256  # characters of a client-chosen name (a model, a request id) in a span
MAX_STREAM_TEXT = content.MAX_JSON  # characters of a streamed answer kept with capture_content
_PROPAGATOR = TraceContextTextMapPropagator()
# the SDK's and the exporter's loggers: a line per dropped span (queue full) or per failed batch
# would flood the log while a collector is down or too slow; one a minute says it
NOISY_LOGGERS = ("opentelemetry.sdk._shared_internal", "opentelemetry.exporter.otlp.proto.http.trace_exporter")
LOG_EVERY_S = 60.0
_REQUEST_PARAMS = (("max_tokens", "gen_ai.request.max_tokens"), ("temperature", "gen_ai.request.temperature"),
                   ("top_p", "gen_ai.request.top_p"))


def _w3c(span: Span) -> list[tuple[str, str]]:
    """``traceparent`` naming ``span`` (and the trace's ``tracestate``), as the upstream gets them."""
    context = span.get_span_context()
    headers = [("traceparent", f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}")]
    if context.trace_state:
        headers.append(("tracestate", context.trace_state.to_header()))
    return headers


def _json(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= content.MAX_JSON else text[:content.MAX_JSON] + content.TRUNCATED


def _usage(usage: Usage) -> dict[str, AttributeValue]:
    return {"gen_ai.usage.input_tokens": usage.prompt_tokens, "gen_ai.usage.output_tokens": usage.completion_tokens}


class _Sometimes(logging.Filter):
    """Lets a logger's records through at most once every ``every_s`` seconds."""

    def __init__(self, every_s: float):
        super().__init__()
        self.every_s, self.next_at = every_s, 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        self.next_at = now + self.every_s
        return True


def _quieten(names: tuple[str, ...]) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Sometimes) for f in logger.filters):
            logger.addFilter(_Sometimes(LOG_EVERY_S))


class SdkTracing:
    def __init__(self, settings: OtlpSettings):
        self.settings = settings
        _quieten(NOISY_LOGGERS)
        self.provider = TracerProvider(resource=Resource.create({  # one instance id per worker process
            "service.name": settings.service_name, "service.version": __version__,
            "service.instance.id": str(uuid.uuid4())}))
        self.exporter = OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers),
                                         timeout=EXPORT_TIMEOUT_S)
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("gateway", __version__)

    def request(self, endpoint: str, request_id: str, client_id: str, arrived: float, capture: bool,
                traceparent: str | None, tracestate: str | None) -> RequestTrace:
        parent = Context()
        if traceparent is not None:
            carrier = {"traceparent": traceparent} if tracestate is None else {"traceparent": traceparent,
                                                                               "tracestate": tracestate}
            parent = _PROPAGATOR.extract(carrier, parent)  # an invalid one is ignored: a new trace
        span = self.tracer.start_span(endpoint, parent, SpanKind.SERVER, {
            "gateway.request.id": request_id[:MAX_NAME], "gateway.client.id": client_id,
        }, start_time=int(arrived * 1e9))
        return SdkRequestTrace(self.tracer, span, capture)

    def shutdown(self) -> None:
        """Bounded: the queue gets ``FLUSH_AT_SHUTDOWN_MS``, then the exporter stops (an export still
        retrying against an absent collector gives up) before the processor's thread is joined."""
        self.provider.force_flush(FLUSH_AT_SHUTDOWN_MS)
        self.exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        self.provider.shutdown()


class SdkRequestTrace:
    __slots__ = ("tracer", "span", "recording", "context", "capture", "attempts", "reasons", "texts", "text_budget")

    def __init__(self, tracer: Tracer, span: Span, capture: bool):
        self.tracer, self.span, self.capture = tracer, span, capture
        # a span the sampler dropped (OTEL_TRACES_SAMPLER, or a client's unsampled traceparent) is
        # only carried on to the upstream: nothing is computed for it
        self.recording = span.is_recording()
        self.context = set_span_in_context(span, Context())  # the parent of the attempts and tool calls
        self.attempts = 0
        self.reasons: list[str] = []
        self.texts: dict[int, list[str]] = {}  # a streamed answer's text per choice (capture_content)
        self.text_budget = MAX_STREAM_TEXT

    def called(self, call: Call) -> None:
        if not self.recording:
            return
        operation, model = operation_name(call), call.model[:MAX_NAME]
        self.span.update_name(f"{operation} {model}")
        attributes: dict[str, AttributeValue] = {"gen_ai.operation.name": operation, "gen_ai.request.model": model}
        if call.stream:
            attributes["gen_ai.request.stream"] = True
        for name, attribute in _REQUEST_PARAMS:
            value = call.body.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[attribute] = value
        if self.capture:
            messages = content.input_messages(call.body)
            if messages is not None:
                attributes["gen_ai.input.messages"] = messages
        self.span.set_attributes(attributes)

    def answered(self, data: dict[str, Any]) -> None:
        if not self.recording:
            return
        self.reasons = content.finish_reasons(data)[:content.MAX_REASONS]
        if self.capture:
            messages = content.output_messages(data)
            if messages is not None:
                self.span.set_attribute("gen_ai.output.messages", messages)

    def watch(self, events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        return self._watched(events) if self.recording else events

    async def _watched(self, events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in events:
                if len(self.reasons) < content.MAX_REASONS:
                    self.reasons += content.stream_finish_reasons(chunk)
                if self.capture and self.text_budget > 0:
                    self.text_budget = content.stream_texts(chunk, self.texts, self.text_budget)
                yield chunk
        finally:
            await events.aclose()

    def attempt(self, target: Target, key_label: str, call: Call) -> AttemptTrace:
        self.attempts += 1
        if not self.recording:
            return SdkAttempt(self.tracer.start_span("attempt", self.context, SpanKind.CLIENT))
        provider = target.provider
        operation = operation_name(call, provider.protocol)
        address, port = server_of(provider.api_root)
        span = self.tracer.start_span(f"{operation} {target.model}", self.context, SpanKind.CLIENT, {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": provider_name(provider.type),
            "gen_ai.request.model": target.model, "server.address": address, "server.port": port,
            "gateway.key.label": key_label, "gateway.attempt": self.attempts,
        })
        return SdkAttempt(span)

    def tool_call(self, name: str, call_id: str | None, arguments: Any,
                  server: tuple[str, int] | None) -> ToolCall:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "extension",
            "mcp.method.name": "tools/call"}
        if call_id is not None:
            attributes["gen_ai.tool.call.id"] = call_id
        if server is not None:
            attributes["server.address"], attributes["server.port"] = server
        if self.capture and arguments is not None:
            attributes["gen_ai.tool.call.arguments"] = _json(arguments)
        span = self.tracer.start_span(f"execute_tool {name}", self.context, SpanKind.INTERNAL, attributes)
        return SdkToolCall(span, self.capture)

    def end(self, outcome: Finished) -> None:
        if not self.recording:
            self.span.end()
            return
        attributes: dict[str, AttributeValue] = {"http.response.status_code": outcome.status,
                                                 "gateway.attempts": self.attempts}
        target = outcome.target
        if target is not None:
            attributes["gen_ai.provider.name"] = provider_name(target.provider.type)
            attributes["gen_ai.response.model"] = target.model
        if outcome.key_label:
            attributes["gateway.key.label"] = outcome.key_label
        if outcome.usage is not None:
            attributes.update(_usage(outcome.usage))
        if outcome.cache is not None:
            attributes["gateway.cache.hit"] = outcome.cache == "hit"
        if outcome.cost_usd:
            attributes["gateway.cost.usd"] = outcome.cost_usd
        if outcome.stream and outcome.upstream_s is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = outcome.upstream_s
        if self.reasons:
            attributes["gen_ai.response.finish_reasons"] = self.reasons
        if self.texts:
            streamed = content.streamed_output(self.texts, self.reasons)
            if streamed is not None:
                attributes["gen_ai.output.messages"] = streamed
        failed = outcome.error_code is not None or outcome.status >= 400
        if failed:
            attributes["error.type"] = outcome.error_code or str(outcome.status)
        self.span.set_attributes(attributes)
        if outcome.status >= 500 or (failed and outcome.status < 400):  # 4xx: the client's error, not ours
            self.span.set_status(StatusCode.ERROR)
        self.span.end()


class SdkAttempt:
    __slots__ = ("span", "headers", "ended")

    def __init__(self, span: Span):
        self.span = span
        self.headers = _w3c(span)
        self.ended = False

    def responded(self, status: int) -> None:
        self.span.set_attribute("http.response.status_code", status)

    def failed(self, error_type: str, reason: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.span.set_attribute("error.type", error_type)
        if reason is not None:
            self.span.set_attribute("gateway.retry.reason", reason)
        self.span.set_status(StatusCode.ERROR)
        self.span.end()

    def end(self, usage: Usage | None) -> None:
        if self.ended:
            return
        self.ended = True
        if usage is not None:
            self.span.set_attributes(_usage(usage))
        else:
            self.span.set_attribute("error.type", "unreadable_answer")
            self.span.set_status(StatusCode.ERROR)
        self.span.end()


class SdkToolCall:
    __slots__ = ("span", "capture")

    def __init__(self, span: Span, capture: bool):
        self.span, self.capture = span, capture

    def meta(self) -> dict[str, str]:
        return dict(_w3c(self.span))

    def result(self, value: Any, is_error: bool = False) -> None:
        if is_error:
            self.span.set_attribute("error.type", "tool_error")
            self.span.set_status(StatusCode.ERROR)
        if self.capture and value is not None:
            self.span.set_attribute("gen_ai.tool.call.result", _json(value))

    def __enter__(self) -> ToolCall:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None:
            self.span.set_attribute("error.type", kind.__name__)
            self.span.set_status(StatusCode.ERROR)
        self.span.end()
