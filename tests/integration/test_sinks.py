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


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_lines(path: Path, count: int, timeout: float = 10.0) -> list[dict[str, object]]:
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


def sinks_of(gw: Gateway) -> dict[str, dict[str, object]]:
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
