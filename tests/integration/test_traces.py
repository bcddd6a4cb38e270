"""OpenTelemetry traces, received over OTLP/HTTP by a collector the test runs on loopback.

The real gateway (tracing turned on by ``OTEL_EXPORTER_OTLP_ENDPOINT`` in its ``.env``, or by
``observability.otlp`` in config.yaml) serves requests from the official OpenAI SDK through a
fake upstream; the spans it exports are decoded with ``opentelemetry-proto``.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

PROMPT = "describe the purple elephant 31337"
ANSWER = "zebras-answer-4242 in a few words"
UPSTREAM_KEYS = ("sk-upstream-key-one-111111", "sk-upstream-key-two-222222")
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # the batch processor's delay (ms): spans arrive quickly


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def _start(workdir: Path, config: str, dotenv: str = "", env: dict[str, str] | None = None) -> Gateway:
    gateway = Gateway(workdir, config, {**FAST_EXPORT, **(env or {})})
    gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n{dotenv}")
    return gateway.start()


@pytest.fixture
def traced(tmp_path: Path, fake: FakeUpstream, receiver: OtlpReceiver) -> Iterator[Gateway]:
    """Tracing on through the ``.env``; content not captured."""
    gateway = _start(tmp_path, basic_config(fake), f"OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}\n")
    yield gateway
    gateway.stop()


def _client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def _request_span(spans: list[ReceivedSpan], request_id: str) -> ReceivedSpan | None:
    return next((s for s in spans if s.kind == "server" and s.attributes.get("gateway.request.id") == request_id),
                None)


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.attributes["gateway.attempt"])


def _all_there(request_ids: list[str], spans: list[ReceivedSpan]) -> bool:
    return all(_request_span(spans, request_id) is not None for request_id in request_ids)


def _names(traceparent: str, trace_id: str, span_id: str) -> bool:
    """Whether a W3C ``traceparent`` names that span of that trace, sampled (its flags' low bit;
    a trace the gateway starts itself also sets the random-trace-id bit: ``03``)."""
    version, trace, span, flags = traceparent.split("-")
    return (version, trace, span) == ("00", trace_id, span_id) and int(flags, 16) & 1 == 1


def _traced_request(receiver: OtlpReceiver, request_id: str, attempts: int) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    def complete(spans: list[ReceivedSpan]) -> bool:
        span = _request_span(spans, request_id)
        return span is not None and len(_children(spans, span)) == attempts

    spans = receiver.wait_for(complete)
    span = _request_span(spans, request_id)
    assert span is not None
    return span, _children(spans, span)


def test_a_whole_answer_is_a_server_span_under_the_clients_with_an_attempt_the_upstream_is_told_of(
        traced: Gateway, fake: FakeUpstream, receiver: OtlpReceiver):
    fake.set_default(Behaviour(text=ANSWER))
    _client(traced).chat.completions.create(
        model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}], max_tokens=50,
        extra_headers={"x-request-id": "whole-1", "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                       "tracestate": "vendor=opaque-value"})
    request, (attempt,) = _traced_request(receiver, "whole-1", 1)

    assert (request.name, request.kind, request.service) == ("chat fake-gpt-4o", "server", "llm-gateway")
    assert (request.trace_id, request.parent_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert {k: request.attributes.get(k) for k in (
        "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name",
        "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons",
        "gen_ai.request.max_tokens", "gateway.client.id", "http.response.status_code", "gateway.attempts",
    )} == {"gen_ai.operation.name": "chat", "gen_ai.request.model": "fake-gpt-4o",
           "gen_ai.response.model": "fake-gpt-4o", "gen_ai.provider.name": "openai-compatible",
           "gen_ai.usage.input_tokens": 3 + len(PROMPT.split()), "gen_ai.usage.output_tokens": len(ANSWER.split()),
           "gen_ai.response.finish_reasons": ["stop"], "gen_ai.request.max_tokens": 50, "gateway.client.id": "app",
           "http.response.status_code": 200, "gateway.attempts": 1}
    assert request.attributes["gateway.key.label"] in ("fake#1", "fake#2")
    assert "error.type" not in request.attributes and not request.failed

    assert (attempt.name, attempt.kind, attempt.trace_id) == ("chat fake-gpt-4o", "client", CLIENT_TRACE)
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["server.port"] == fake.port
    assert attempt.attributes["gen_ai.usage.output_tokens"] == len(ANSWER.split())
    assert attempt.attributes["gateway.key.label"] == request.attributes["gateway.key.label"]
    assert attempt.attributes["http.response.status_code"] == 200

    # the upstream got a traceparent naming the attempt's span, and the client's tracestate
    (sent,) = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert sent.headers["traceparent"] == f"00-{CLIENT_TRACE}-{attempt.span_id}-01"
    assert sent.headers["tracestate"] == "vendor=opaque-value"


def test_a_stream_span_ends_once_it_is_settled_with_its_usage(traced: Gateway, fake: FakeUpstream,
                                                              receiver: OtlpReceiver):
    fake.set_default(Behaviour(text=ANSWER, chunks=4))
    stream = _client(traced).chat.completions.create(
        model="fake-gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-request-id": "stream-1"})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == ANSWER
    request, (attempt,) = _traced_request(receiver, "stream-1", 1)

    assert request.name == "chat fake-gpt-4o-mini"
    assert request.parent_id == ""  # no traceparent from the client: a trace of its own
    assert request.attributes["gen_ai.request.stream"] is True
    assert request.attributes["gen_ai.usage.output_tokens"] == len(ANSWER.split())
    assert request.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert request.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert attempt.attributes["gen_ai.usage.input_tokens"] == 3 + len(PROMPT.split())
    (sent,) = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert _names(sent.headers["traceparent"], request.trace_id, attempt.span_id)
    assert "tracestate" not in sent.headers


def test_a_failover_has_an_attempt_span_each_the_first_saying_why(traced: Gateway, fake: FakeUpstream,
                                                                  receiver: OtlpReceiver):
    fake.script(Behaviour(status=429, headers={"Retry-After": "30"},
                          body={"error": {"message": "slow down", "type": "rate_limit"}}))
    answer = _client(traced).chat.completions.create(
        model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": "failover-1"})
    assert answer.choices[0].message.content
    request, (first, second) = _traced_request(receiver, "failover-1", 2)

    assert first.attributes["error.type"] == first.attributes["gateway.retry.reason"] == "rate_limited"
    assert first.attributes["http.response.status_code"] == 429 and first.failed
    assert "error.type" not in second.attributes and not second.failed
    assert second.attributes["http.response.status_code"] == 200
    assert {first.attributes["gateway.key.label"], second.attributes["gateway.key.label"]} == {"fake#1", "fake#2"}
    assert request.attributes["gateway.key.label"] == second.attributes["gateway.key.label"]
    assert request.attributes["gateway.attempts"] == 2
    # each upstream request named its own attempt's span
    sent = [r.headers["traceparent"] for r in fake.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 2
    assert _names(sent[0], request.trace_id, first.span_id) and _names(sent[1], request.trace_id, second.span_id)


def test_a_failed_request_says_why_and_is_an_error(traced: Gateway, fake: FakeUpstream, receiver: OtlpReceiver):
    fake.set_default(Behaviour(status=500, body={"error": {"message": "down", "type": "server_error"}}))
    response = httpx.post(traced.base_url + "/v1/chat/completions", headers={
        "Authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "failed-1"},
        json={"model": "fake-gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}, timeout=30)
    assert response.status_code == 502
    request, attempts = _traced_request(receiver, "failed-1", 2)
    assert request.attributes["error.type"] == "provider_error" and request.failed
    assert request.attributes["http.response.status_code"] == 502
    assert [a.attributes["gateway.retry.reason"] for a in attempts] == ["server_error", "server_error"]


def test_no_prompt_answer_or_key_leaves_the_gateway_in_a_span(traced: Gateway, fake: FakeUpstream,
                                                             receiver: OtlpReceiver):
    fake.set_default(Behaviour(text=ANSWER))
    client = _client(traced)
    client.chat.completions.create(model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}],
                                   extra_headers={"x-request-id": "quiet-1"})
    for chunk in client.chat.completions.create(model="fast", messages=[{"role": "user", "content": PROMPT}],
                                                stream=True, extra_headers={"x-request-id": "quiet-2"}):
        assert chunk
    _traced_request(receiver, "quiet-1", 1)
    _traced_request(receiver, "quiet-2", 1)
    exported = receiver.raw()
    for secret in (PROMPT, "purple elephant", "zebras-answer", CLIENT_KEY, MASTER_KEY, *UPSTREAM_KEYS):
        assert secret.encode() not in exported, secret
    names = {name for span in receiver.spans() for name in span.attributes}
    assert not {name for name in names if name.startswith(("gen_ai.input", "gen_ai.output"))}


def test_captured_content_and_config_endpoint_with_headers(tmp_path: Path, fake: FakeUpstream,
                                                           receiver: OtlpReceiver):
    config = basic_config(fake, textwrap.dedent(f"""
    observability:
      capture_content: true
      otlp:
        endpoint: {receiver.url}
        headers: {{x-collector-token: "${{COLLECTOR_TOKEN}}"}}
        service_name: gateway-under-test
    """))
    gateway = _start(tmp_path, config, "COLLECTOR_TOKEN=tok-from-dotenv-77\n")
    try:
        fake.set_default(Behaviour(text=ANSWER))
        client = _client(gateway)
        client.chat.completions.create(model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}],
                                       extra_headers={"x-request-id": "capture-1"})
        streamed = client.chat.completions.create(model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}],
                                                  stream=True, extra_headers={"x-request-id": "capture-2"})
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == ANSWER
        whole, _ = _traced_request(receiver, "capture-1", 1)
        stream, _ = _traced_request(receiver, "capture-2", 1)
    finally:
        gateway.stop()
    assert whole.service == "gateway-under-test"
    assert receiver.headers[0]["x-collector-token"] == "tok-from-dotenv-77"
    for span in (whole, stream):
        assert PROMPT in span.attributes["gen_ai.input.messages"]
        assert '"role":"user"' in span.attributes["gen_ai.input.messages"]
        assert ANSWER in span.attributes["gen_ai.output.messages"]
        assert '"finish_reason":"stop"' in span.attributes["gen_ai.output.messages"]
    exported = receiver.raw()
    for secret in (CLIENT_KEY, MASTER_KEY, *UPSTREAM_KEYS):
        assert secret.encode() not in exported, secret


def test_tracing_off_sends_no_trace_context_upstream(gateway: Gateway, fake: FakeUpstream):
    response = gateway.client().post("/v1/chat/completions", headers={
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        json={"model": "fake-gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    (sent,) = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert "traceparent" not in sent.headers and "tracestate" not in sent.headers


def test_a_client_trace_that_is_not_sampled_is_carried_upstream_and_not_exported(
        traced: Gateway, fake: FakeUpstream, receiver: OtlpReceiver):
    client = _client(traced)
    client.chat.completions.create(model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}],
                                   extra_headers={"x-request-id": "unsampled-1",
                                                  "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
    client.chat.completions.create(model="fake-gpt-4o", messages=[{"role": "user", "content": PROMPT}],
                                   extra_headers={"x-request-id": "sampled-1"})
    _traced_request(receiver, "sampled-1", 1)  # exported after the first one, which never is
    assert _request_span(receiver.spans(), "unsampled-1") is None
    assert CLIENT_TRACE not in {s.trace_id for s in receiver.spans()}
    version, trace, span, flags = fake.requests[0].headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", CLIENT_TRACE, "00") and span not in (CLIENT_SPAN, "0" * 16)


def test_each_worker_exports_its_own_spans(tmp_path: Path, fake: FakeUpstream, receiver: OtlpReceiver):
    config = basic_config(fake, "storage: {type: memory}\n")  # nothing limited: two workers need no Redis
    gateway = Gateway(tmp_path, config, {**FAST_EXPORT, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}, workers=2)
    instances: set[str] = set()
    try:
        gateway.start()
        for n in range(60):  # a connection each: the kernel spreads them over the two workers
            response = httpx.post(gateway.base_url + "/v1/chat/completions", timeout=30, headers={
                "Authorization": f"Bearer {CLIENT_KEY}", "x-request-id": f"worker-{n}"},
                json={"model": "fake-gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
            if n % 12 == 11:
                spans = receiver.wait_for(functools.partial(_all_there, [f"worker-{i}" for i in range(n + 1)]))
                instances = {s.instance for s in spans if s.kind == "server"}
                if len(instances) == 2:
                    break
    finally:
        gateway.stop()
    # each worker (forked from Granian's server process) built its own exporter after the fork
    # and names itself by a service.instance.id of its own
    assert len(instances) == 2


@pytest.mark.parametrize("transport", ["httpx", "aiohttp", "reqwest"])
def test_every_upstream_transport_carries_the_attempts_trace_context(
        tmp_path: Path, fake: FakeUpstream, receiver: OtlpReceiver, transport: str):
    gateway = _start(tmp_path, basic_config(fake), f"OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}\n",
                     {"GATEWAY_HTTP_TRANSPORT": transport})
    try:
        _client(gateway).chat.completions.create(
            model="fake-gpt-4o", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": f"via-{transport}", "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                           "tracestate": "vendor=opaque-value"})
        _, (attempt,) = _traced_request(receiver, f"via-{transport}", 1)
    finally:
        gateway.stop()
    (sent,) = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert sent.headers["traceparent"] == f"00-{CLIENT_TRACE}-{attempt.span_id}-01"
    assert sent.headers["tracestate"] == "vendor=opaque-value"


def test_an_anthropic_client_streamed_through_to_an_anthropic_provider(tmp_path: Path, receiver: OtlpReceiver):
    from tests.fake_anthropic import FakeAnthropic

    with FakeAnthropic() as upstream:
        config = textwrap.dedent(f"""
        llm_providers:
          - {{id: claude, type: anthropic, base_url: "{upstream.base_url}", api_keys: ["sk-ant-upstream-key-11111"],
              models: [claude-fake-1]}}
        api_keys:
          - {{id: app, key: {CLIENT_KEY}}}
        """)
        gateway = _start(tmp_path, config, f"OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}\n")
        try:
            client = anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
            with client.messages.stream(model="claude-fake-1", max_tokens=64, messages=[
                    {"role": "user", "content": PROMPT}], extra_headers={"x-request-id": "anthropic-1"}) as stream:
                assert stream.get_final_message().stop_reason == "end_turn"
            request, (attempt,) = _traced_request(receiver, "anthropic-1", 1)
        finally:
            gateway.stop()
    # passed through untranslated: the finish reason is read from Anthropic's own events
    assert request.name == "chat claude-fake-1"
    assert request.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert request.attributes["gen_ai.provider.name"] == attempt.attributes["gen_ai.provider.name"] == "anthropic"
    assert request.attributes["gen_ai.usage.output_tokens"] > 0
    assert upstream.requests[0].headers["traceparent"].split("-")[2] == attempt.span_id
    assert b"sk-ant-upstream-key-11111" not in receiver.raw() and PROMPT.encode() not in receiver.raw()
