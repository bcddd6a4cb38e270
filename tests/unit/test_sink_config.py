"""``observability.sinks`` in config.yaml: each type's fields checked with their path and line, the
names unique, an otlp_logs sink only with a collector to send to, header values never echoed."""

from __future__ import annotations

import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.snapshot import Snapshot, build_snapshot
from gateway.observability.sinks.config import FileSinkConfig, WebhookSinkConfig


def snapshot(text: str, env: dict[str, str] | None = None) -> Snapshot:
    return build_snapshot(parse_config(text.encode(), "c.yaml", env or {}), "c.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        snapshot(text)
    return [issue.render("c.yaml") for issue in info.value.issues]


def test_sinks_with_their_defaults_and_headers_from_the_environment() -> None:
    snap = snapshot("""
observability:
  sinks:
    - {type: file, path: logs/r.jsonl}
    - {type: webhook, url: "https://collect.example/in", headers: {Authorization: "Bearer ${TOKEN}"}}
""", {"TOKEN": "tok-123"})
    file, hook = snap.observability.sinks
    assert isinstance(file, FileSinkConfig) and (file.label, file.max_mb, file.keep, file.queue_size) == (
        "file", 100.0, 5, 10_000)
    assert isinstance(hook, WebhookSinkConfig) and hook.headers == {"Authorization": "Bearer tok-123"}
    assert (hook.label, hook.batch_size, hook.interval_s, hook.retries) == ("webhook", 100, 2.0, 3)
    assert snap.observability.capture_content is False


def test_each_sink_field_is_checked_with_its_line() -> None:
    found = errors("""
observability:
  sinks:
    - type: file
      path: r.jsonl
      max_mb: 0
    - {type: webhook, url: "ftp://x", batch_size: 0, colour: red}
    - {type: kafka, topic: t}
    - {path: x}
""")
    assert "c.yaml:6: observability.sinks[0].max_mb: Input should be greater than 0" in found
    assert "c.yaml:7: observability.sinks[1].url: Value error, must be an http:// or https:// URL" in found
    assert "c.yaml:7: observability.sinks[1].batch_size: Input should be greater than or equal to 1" in found
    assert "c.yaml:7: observability.sinks[1].colour: unknown field" in found
    assert ("c.yaml:8: observability.sinks[2]: type must be one of 'file', 'webhook' or 'otlp_logs'") in found
    assert ("c.yaml:9: observability.sinks[3]: type must be one of 'file', 'webhook' or 'otlp_logs'") in found


def test_two_sinks_of_one_type_need_names() -> None:
    found = errors("""
observability:
  sinks:
    - {type: file, path: a.jsonl}
    - {type: file, path: b.jsonl}
""")
    assert found == ["c.yaml:3: observability.sinks: Value error, sink name 'file' is used twice (two 'file' sinks: "
                     "give each a name)"]
    snap = snapshot("""
observability:
  sinks:
    - {type: file, path: a.jsonl}
    - {type: file, name: second, path: b.jsonl}
""")
    assert [s.label for s in snap.observability.sinks] == ["file", "second"]


def test_an_otlp_logs_sink_needs_a_collector() -> None:
    assert errors("observability: {sinks: [{type: otlp_logs}]}") == [
        "c.yaml:1: observability.sinks[0].type: an otlp_logs sink sends to the collector of observability.otlp, "
        "which is not set (or give the sink an endpoint)"]
    snap = snapshot("observability: {otlp: {endpoint: 'http://c:4318'}, sinks: [{type: otlp_logs}]}")
    assert snap.sink_context.otlp is not None and snap.sink_context.otlp.endpoint == "http://c:4318"
    assert snapshot("observability: {sinks: [{type: otlp_logs, endpoint: 'http://c:4318/v1/logs'}]}")


def test_a_header_value_with_a_line_break_is_refused_without_echoing_it() -> None:
    found = errors('observability: {sinks: [{type: webhook, url: "http://x", headers: {X-Token: "abc\\r\\ndef"}}]}')
    assert found == ["c.yaml:1: observability.sinks[0].headers: Value error, the value of header 'X-Token' holds a "
                     "line break"]
    assert "abc" not in found[0]


def test_a_sink_change_changes_the_config_version() -> None:
    one = snapshot("observability: {sinks: [{type: file, path: a.jsonl}]}")
    two = snapshot("observability: {sinks: [{type: file, path: a.jsonl, keep: 2}]}")
    assert one.version != two.version
