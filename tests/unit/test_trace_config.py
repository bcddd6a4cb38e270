"""Where traces go: ``observability.otlp`` in the config, else the standard OTEL_* environment
(process environment over ``.env``, as every ``${VAR}``); checked like the rest of the config."""

from __future__ import annotations

import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.snapshot import Snapshot, build_snapshot

OTLP = """
observability:
  otlp:
    endpoint: ${OTLP_URL}
    headers: {authorization: "Bearer ${OTLP_TOKEN}"}
"""


def snapshot(text: str = "", env: dict[str, str] | None = None) -> Snapshot:
    return build_snapshot(parse_config(text.encode(), "c.yaml", env or {}), "c.yaml")


def test_tracing_is_off_by_default_and_content_is_never_captured_by_default():
    plain = snapshot()
    assert plain.otlp is None and plain.observability.capture_content is False


def test_the_standard_environment_turns_tracing_on():
    otlp = snapshot(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                         "OTEL_EXPORTER_OTLP_HEADERS": "x-token=abc%3D%3D, tenant = acme",
                         "OTEL_SERVICE_NAME": "gw-eu"}).otlp
    assert otlp is not None
    assert otlp.endpoint == "http://collector:4318/v1/traces"  # the base URL gets the signal's path
    assert otlp.headers == (("x-token", "abc=="), ("tenant", "acme"))
    assert otlp.service_name == "gw-eu"
    assert "abc" not in repr(otlp)  # a collector token is never printed


def test_the_traces_own_endpoint_is_used_as_it_is_and_wins():
    otlp = snapshot(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/custom/path",
                         "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_HEADERS": "b=2"}).otlp
    assert otlp is not None
    assert (otlp.endpoint, otlp.headers, otlp.service_name) == (
        "https://collector.example/custom/path", (("a", "1"),), "llm-gateway")


def test_the_config_wins_over_the_environment_and_interpolates_its_headers():
    otlp = snapshot(OTLP, {"OTLP_URL": "http://collector:4318/v1/traces", "OTLP_TOKEN": "t0k",
                           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318"}).otlp
    assert otlp is not None
    assert otlp.endpoint == "http://collector:4318/v1/traces"  # already ending so: kept
    assert otlp.headers == (("authorization", "Bearer t0k"),)


def test_otel_sdk_disabled_turns_tracing_off_whatever_else_says_on():
    assert snapshot(OTLP, {"OTLP_URL": "http://c:4318", "OTLP_TOKEN": "x", "OTEL_SDK_DISABLED": "true"}).otlp is None


def test_capture_content_is_read_from_the_config():
    assert snapshot("observability: {capture_content: true}\n").observability.capture_content is True


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("observability:\n  otlp: {endpoint: collector:4318}\n", {}, "c.yaml:2: observability.otlp: must be an http"),
    ("observability:\n  otlp: {endpoint: http://c:4318, headers: {x-a: \"1\\r\\nx-b: 2\"}}\n", {},
     "c.yaml:2: observability.otlp: header 'x-a' holds a line break"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://c:4317"}, "observability.otlp: OTEL_EXPORTER_OTLP_ENDPOINT: must be"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "secret-without-equals"},
     "observability.otlp: OTEL_EXPORTER_OTLP_HEADERS: header 1 is not name=value"),
    ("observability:\n  otlp: {}\n", {}, "observability.otlp.endpoint: Field required"),
    ("observability:\n  trace: true\n", {}, "observability.trace: unknown field"),
])
def test_a_bad_trace_export_is_a_config_error_naming_where_it_comes_from(text, env, expected):
    with pytest.raises(ConfigError) as caught:
        snapshot(text, env)
    rendered = caught.value.render()
    assert expected in rendered
    assert "secret-without-equals" not in rendered
