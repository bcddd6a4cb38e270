"""Access records to the sinks of observability.sinks, through the real gateway: the file sink
(JSON lines, rotation, content only when asked, never a key) and the webhook sink (batches, headers
from .env, retries, drops counted when its queue is full, never slowing a request); reload and a
failing sink in readiness."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream
from tests.sink_receiver import SinkReceiver

UPSTREAM_KEYS = ("sk-upstream-key-one-111111", "sk-upstream-key-two-222222")
SECRETS = (*UPSTREAM_KEYS, CLIENT_KEY, MASTER_KEY)
ASK = {"model": "fake:fake-gpt-4o", "messages": [{"role": "user", "content": "what is the capital of France"}]}


@pytest.fixture
def receiver() -> Iterator[SinkReceiver]:
    with SinkReceiver() as server:
        yield server


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_lines(path: Path, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = lines_of(path)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{path} holds {len(lines_of(path))} records, not {count}")


def metric(gw: Gateway, name: str, sink: str) -> float:
    found = re.search(rf'^{name}{{sink="{re.escape(sink)}"}} (\S+)$', gw.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


def sinks_of(gw: Gateway) -> dict[str, dict[str, Any]]:
    return {sink["name"]: sink for sink in gw.readiness()["sinks"]}


def test_the_file_sink_writes_the_ledger_record_without_keys_or_content(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    gw = start_gateway(basic_config(fake, f"""
    observability:
      sinks:
        - {{type: file, path: {path}, interval_s: 0.1}}
    """))
    with gw.client() as client:
        answered = client.post("/v1/chat/completions", json=ASK)
        refused = client.post("/v1/chat/completions", json={**ASK, "model": "no-such-model"})
        streamed = client.post("/v1/chat/completions", json={**ASK, "model": "fast", "stream": True})
    assert (answered.status_code, refused.status_code, streamed.status_code) == (200, 400, 200)
    records = {r["request_id"]: r for r in wait_lines(path, 3)}
    first = records[answered.headers["x-request-id"]]
    usage = answered.json()["usage"]
    assert first["client_id"] == "app" and first["provider"] == "fake" and first["model"] == "fake-gpt-4o"
    assert first["key_label"] in ("fake#1", "fake#2") and first["status"] == 200 and first["kind"] == "model"
    assert (first["tokens_in"], first["tokens_out"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert first["cost_usd"] == pytest.approx((usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1000)
    assert first["latency_ms"] > 0 and first["endpoint"] and first["requested_model"] == "fake:fake-gpt-4o"
    assert first["cache_hit"] is False and first["timestamp"].endswith("Z")
    assert records[refused.headers["x-request-id"]]["status"] == 400
    assert records[refused.headers["x-request-id"]]["error_code"] == "model_not_found"
    stream = records[streamed.headers["x-request-id"]]
    assert stream["stream"] is True and stream["requested_model"] == "fast" and stream["tokens_out"] > 0
    text = path.read_text()
    assert "content" not in first and "capital of France" not in text
    assert not any(secret in text for secret in SECRETS)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_content_is_recorded_only_with_capture_content(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    gw = start_gateway(basic_config(fake, f"""
    observability:
      capture_content: true
      sinks:
        - {{type: file, path: {path}, interval_s: 0.1}}
    """))
    with gw.client() as client:
        whole = client.post("/v1/chat/completions", json=ASK)
        streamed = client.post("/v1/chat/completions", json={**ASK, "stream": True})
    records = {r["request_id"]: r for r in wait_lines(path, 2)}
    content = records[whole.headers["x-request-id"]]["content"]
    assert content["request"]["messages"] == ASK["messages"]
    assert content["response"]["choices"][0]["message"]["content"] == whole.json()["choices"][0]["message"]["content"]
    streamed_text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                            for line in streamed.text.splitlines()
                            if line.startswith("data: {") and json.loads(line[6:])["choices"])
    assert records[streamed.headers["x-request-id"]]["content"]["response"] == {"text": streamed_text}
    assert streamed_text and not any(secret in path.read_text() for secret in SECRETS)


def test_the_file_sink_rotates_by_size_and_keeps_the_newest_files(start_gateway: Callable[..., Gateway],
                                                                  fake: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "records.jsonl"
    gw = start_gateway(basic_config(fake, f"""
    observability:
      sinks:
        - {{type: file, path: {path}, max_mb: 0.002, keep: 2, batch_size: 1, interval_s: 0.05}}
    """))
    ids = []
    with gw.client() as client:
        for _ in range(20):
            ids.append(client.post("/v1/chat/completions", json=ASK).headers["x-request-id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ids[-1] not in path.read_text(errors="replace"):
        time.sleep(0.05)
    files = sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock"))
    assert files == ["records.jsonl", "records.jsonl.1", "records.jsonl.2"]
    kept = [r["request_id"] for name in reversed(files) for r in lines_of(path.parent / name)]
    assert kept == ids[-len(kept):] and 3 <= len(kept) < 20  # the newest, in order; the oldest rotated out
    for name in files:
        assert (path.parent / name).stat().st_size <= 0.002 * 1024 * 1024


def webhook_config(fake: FakeUpstream, receiver: SinkReceiver, **fields: object) -> str:
    """A webhook sink named ``hook`` on the receiver, with ``fields`` beside its url and headers."""
    own = "".join(f"\n          {name}: {value}" for name, value in fields.items())
    return basic_config(fake, f"""
    observability:
      sinks:
        - type: webhook
          name: hook
          url: {receiver.url}/ingest
          headers: {{Authorization: "Bearer ${{SINK_TOKEN}}", X-Team: platform}}{own}
    """)


def test_the_webhook_sink_posts_batches_with_headers_from_env(start_gateway: Callable[..., Gateway],
                                                             fake: FakeUpstream, receiver: SinkReceiver) -> None:
    token = "sink-token-from-dotenv-0042"
    config = webhook_config(fake, receiver, batch_size=4, interval_s=0.3)
    gw = start_gateway(config, env={"SINK_TOKEN": token})
    ids = []
    with gw.client() as client:
        for _ in range(10):
            ids.append(client.post("/v1/chat/completions", json=ASK).headers["x-request-id"])
    records = receiver.wait_for_records(10)
    assert sorted(r["request_id"] for r in records) == sorted(ids)
    batches = receiver.accepted()
    assert all(len(batch.records()) <= 4 for batch in batches) and len(batches) >= 3
    assert all(batch.headers["Authorization"] == f"Bearer {token}" for batch in batches)
    assert all(batch.headers["X-Team"] == "platform" for batch in batches)
    assert metric(gw, "gateway_sink_delivered_total", "hook") == 10
    shown = json.dumps(gw.readiness()) + gw.metrics() + gw.logs()
    assert token not in shown


def test_a_failed_post_is_tried_again_with_backoff(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                  receiver: SinkReceiver) -> None:
    receiver.script(503, 503)
    gw = start_gateway(webhook_config(fake, receiver, interval_s=0.1, backoff_s=0.2),
                       env={"SINK_TOKEN": "t"})
    with gw.client() as client:
        request_id = client.post("/v1/chat/completions", json=ASK).headers["x-request-id"]
    records = receiver.wait_for_records(1)
    assert [r["request_id"] for r in records] == [request_id]
    tried = [r for r in receiver.received if r.path == "/ingest"]
    assert [r.status for r in tried] == [503, 503, 200]
    assert tried[1].at - tried[0].at >= 0.15 and tried[2].at - tried[1].at >= 0.3  # 0.2 s, then doubled (±20%)
    assert metric(gw, "gateway_sink_errors_total", "hook") == 2
    assert metric(gw, "gateway_sink_dropped_total", "hook") == 0
    assert sinks_of(gw)["hook"]["state"] == "ok"


def test_a_full_queue_drops_and_counts_without_slowing_requests(start_gateway: Callable[..., Gateway],
                                                                fake: FakeUpstream, receiver: SinkReceiver) -> None:
    receiver.delay_s = 3.0  # a webhook far slower than the requests
    gw = start_gateway(webhook_config(fake, receiver, batch_size=1, queue_size=3, interval_s=0.05,
                                      timeout_s=30),
                       env={"SINK_TOKEN": "t"})
    took = []
    with gw.client() as client:
        for _ in range(10):
            started = time.monotonic()
            assert client.post("/v1/chat/completions", json=ASK).status_code == 200
            took.append(time.monotonic() - started)
    assert max(took) < 1.0  # never waits for the webhook (each POST takes 3 s)
    # one record in the POST under way, three queued, the other six dropped (five if the first
    # request's record was still queued when the second arrived)
    dropped = metric(gw, "gateway_sink_dropped_total", "hook")
    assert dropped in (5, 6)
    status = sinks_of(gw)["hook"]
    assert status["dropped"] == dropped and status["queued"] == 10 - dropped
    receiver.delay_s = 0.0  # the gateway's stop delivers what waits


def test_a_reload_hands_queued_records_to_the_new_sinks(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                        receiver: SinkReceiver, tmp_path: Path) -> None:
    gw = start_gateway(webhook_config(fake, receiver, interval_s=60, batch_size=1000), env={"SINK_TOKEN": "t"})
    with gw.client() as client:
        before = [client.post("/v1/chat/completions", json=ASK).headers["x-request-id"] for _ in range(5)]
    time.sleep(0.3)
    assert receiver.records() == [] and sinks_of(gw)["hook"]["queued"] == 5  # a minute's batch, not sent yet
    version = gw.readiness()["config"]["version"]
    path = tmp_path / "after.jsonl"
    # the same webhook with another interval (made anew), and a file sink beside it
    also = f"    - {{type: file, path: {path}, interval_s: 0.1}}\n"
    gw.write_config(webhook_config(fake, receiver, interval_s=0.1) + also)
    gw.wait_for_version_change(version)
    with gw.client() as client:
        after = [client.post("/v1/chat/completions", json=ASK).headers["x-request-id"] for _ in range(3)]
    delivered = [r["request_id"] for r in receiver.wait_for_records(8)]
    assert sorted(delivered) == sorted(before + after)  # each once: what the old sink held, then the new
    assert [r["request_id"] for r in wait_lines(path, 3)] == after
    assert set(sinks_of(gw)) == {"hook", "file"}
    version = gw.readiness()["config"]["version"]
    gw.write_config(basic_config(fake))  # no sinks: the file sink writes what it holds and stops
    gw.wait_for_version_change(version)
    assert gw.readiness()["sinks"] == []
    with gw.client() as client:
        client.post("/v1/chat/completions", json=ASK)
    time.sleep(0.3)
    assert len(receiver.records()) == 8 and len(lines_of(path)) == 3


def test_a_failing_sink_is_shown_in_readiness_and_status(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                         receiver: SinkReceiver) -> None:
    receiver.script(*[500] * 50)
    gw = start_gateway(webhook_config(fake, receiver, interval_s=0.05, retries=1, backoff_s=0.05),
                       env={"SINK_TOKEN": "t"})
    with gw.client() as client:
        assert client.post("/v1/chat/completions", json=ASK).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sinks_of(gw)["hook"]["dropped"] != 1:
        time.sleep(0.05)
    hook = sinks_of(gw)["hook"]
    assert hook["state"] == "failing" and hook["dropped"] == 1 and hook["errors"] == 2
    assert hook["last_error"] == f"POST http://127.0.0.1:{receiver.port} answered 500"
    assert httpx.get(gw.base_url + "/health/readiness", timeout=5).status_code == 200  # still serving
    status = httpx.get(gw.base_url + "/admin/v1/status", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                       timeout=5).json()
    assert status["sinks"][0]["name"] == "hook" and status["sinks"][0]["state"] == "failing"
    receiver.statuses.clear()
    with gw.client() as client:
        client.post("/v1/chat/completions", json=ASK)
    receiver.wait_for_records(1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sinks_of(gw)["hook"]["state"] != "ok":
        time.sleep(0.05)
    assert sinks_of(gw)["hook"]["state"] == "ok"


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as the plain value it holds."""
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def test_otlp_logs_sends_the_records_to_the_collector_of_the_traces(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, receiver: SinkReceiver) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    gw = start_gateway(basic_config(fake, f"""
    observability:
      otlp: {{endpoint: "{receiver.url}", headers: {{x-collector-token: "${{OTLP_TOKEN}}"}}, service_name: gw-test}}
      sinks:
        - {{type: otlp_logs, interval_s: 0.1}}
    """), env={"OTLP_TOKEN": "collector-token-77"})
    with gw.client() as client:
        ok = client.post("/v1/chat/completions", json=ASK)
        bad = client.post("/v1/chat/completions", json={**ASK, "model": "no-such-model"})
    deadline = time.monotonic() + 10
    logs: list[Any] = []
    while time.monotonic() < deadline and len(logs) < 2:
        logs = []
        for export in receiver.accepted("/v1/logs"):
            request = ExportLogsServiceRequest.FromString(export.body)
            for resource_logs in request.resource_logs:
                service = {kv.key: any_value(kv.value) for kv in resource_logs.resource.attributes}["service.name"]
                assert service == "gw-test"
                logs += [log for scope in resource_logs.scope_logs for log in scope.log_records]
        time.sleep(0.05)
    assert all(r.headers["x-collector-token"] == "collector-token-77" for r in receiver.accepted("/v1/logs"))
    by_id = {any_value(log.body)["request_id"]: log for log in logs}
    good = by_id[ok.headers["x-request-id"]]
    body = any_value(good.body)
    assert good.event_name == "gateway.access" and good.severity_text == "INFO"
    assert body["client_id"] == "app" and body["status"] == 200 and body["tokens_out"] > 0
    assert {kv.key: any_value(kv.value) for kv in good.attributes}["provider"] == "fake"
    assert by_id[bad.headers["x-request-id"]].severity_text == "WARN"
    assert "collector-token-77" not in json.dumps(gw.readiness())
