"""The hook the MCP code calls around a tool call (``observability.traces.tool_call``): an
``execute_tool {tool}`` span under the request's span, exported over OTLP/HTTP to a receiver on
loopback, with the W3C context the MCP request carries in ``params._meta``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.observability.otlp import OtlpSettings
from gateway.observability.traces import NO_TOOL_CALL, start_tracing, tool_call
from gateway.observability.usage import Outcome
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def _run_tools(receiver: OtlpReceiver, capture: bool) -> tuple[dict[str, str], list[ReceivedSpan]]:
    tracing = start_tracing(OtlpSettings(receiver.url + "/v1/traces", service_name="tools-test"))
    outcome = Outcome("req-tools", "app", "chat.completions", "fake-gpt-4o", 200, time.perf_counter())
    outcome.trace = trace = tracing.request("chat.completions", "req-tools", "app", time.time(), capture, None, None)
    with tool_call(trace, "get_weather", call_id="call_7", arguments={"city": "Paris-argument"},
                   server=("127.0.0.1", 8931)) as span:
        meta = span.meta()
        span.result({"sky": "rainy-result"})
    with pytest.raises(RuntimeError), tool_call(trace, "flaky"):
        raise RuntimeError("the MCP server went away")
    with tool_call(trace, "refuses") as span:
        span.result("tool said no", is_error=True)
    trace.end(outcome)
    tracing.shutdown()  # exports what is queued
    return meta, receiver.wait_for(lambda spans: len(spans) == 4)


def test_tool_calls_are_execute_tool_spans_under_the_request_span(receiver: OtlpReceiver):
    meta, spans = _run_tools(receiver, capture=False)
    (request,) = [s for s in spans if s.kind == "server"]
    tools = {s.attributes["gen_ai.tool.name"]: s for s in spans if s.kind == "internal"}
    assert set(tools) == {"get_weather", "flaky", "refuses"}
    weather = tools["get_weather"]
    assert weather.name == "execute_tool get_weather" and weather.parent_id == request.span_id
    assert {k: weather.attributes[k] for k in ("gen_ai.operation.name", "gen_ai.tool.call.id", "mcp.method.name",
                                               "server.address", "server.port")} == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.id": "call_7", "mcp.method.name": "tools/call",
        "server.address": "127.0.0.1", "server.port": 8931}
    assert not weather.failed
    assert meta["traceparent"].split("-")[1:3] == [request.trace_id, weather.span_id]
    assert tools["flaky"].attributes["error.type"] == "RuntimeError" and tools["flaky"].failed
    assert tools["refuses"].attributes["error.type"] == "tool_error" and tools["refuses"].failed
    exported = receiver.raw()
    assert b"Paris-argument" not in exported and b"rainy-result" not in exported and b"tool said no" not in exported


def test_tool_arguments_and_results_are_recorded_only_with_capture_content(receiver: OtlpReceiver):
    _, spans = _run_tools(receiver, capture=True)
    weather = next(s for s in spans if s.attributes.get("gen_ai.tool.name") == "get_weather")
    assert weather.attributes["gen_ai.tool.call.arguments"] == '{"city":"Paris-argument"}'
    assert weather.attributes["gen_ai.tool.call.result"] == '{"sky":"rainy-result"}'


def test_without_tracing_the_hook_does_nothing():
    with tool_call(None, "get_weather", arguments={"city": "Paris"}) as span:
        assert span is NO_TOOL_CALL and span.meta() == {}
        span.result({"sky": "rainy"})
