"""The admin API's usage answers from the ledger the gateway writes as it
serves: one client's totals, grouped stats, time series, the latest requests, the live request
log (SSE) and the first-steps summary. Everything through the real gateway process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_admin_api import ADMIN_KEY, CHAT, admin_config, wait_until


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    return start_gateway(admin_config(fake))


def traffic(gw: Gateway, fake: FakeUpstream) -> None:
    """Three answered requests of ``app`` (one on the alias) and one the upstream refused."""
    with gw.client(CLIENT_KEY) as app:
        for model in ("fake-gpt-4o", "fake-gpt-4o", "fast"):
            assert app.post("/v1/chat/completions", json={**CHAT, "model": model}).status_code == 200
        fake.script(Behaviour(status=400))
        assert app.post("/v1/chat/completions", json=CHAT).status_code == 400


def admin_get(gw: Gateway, path: str, **params: str | float) -> dict:
    with gw.client(MASTER_KEY) as api:
        answer = api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def written(gw: Gateway, n: int) -> None:
    """Wait until the ledger holds ``n`` requests of ``app`` (rows are written in batches)."""
    wait_until(lambda: admin_get(gw, "/admin/v1/metrics/clients/app")["total_requests"] >= n, what="ledger rows")


def test_client_metrics_answer_the_documented_fields(gw: Gateway, fake: FakeUpstream) -> None:
    started = time.time()
    traffic(gw, fake)
    written(gw, 4)
    now = time.time()
    metrics = admin_get(gw, "/admin/v1/metrics/clients/app", start=int(started) - 1, end=int(now) + 1)
    assert metrics["client_id"] == "app" and metrics["total_requests"] == 4
    assert metrics["success_rate"] == 0.75
    assert metrics["total_tokens"] > 0 and metrics["total_cost"] > 0 and metrics["avg_latency"] > 0
    assert int(started) - 1 <= metrics["last_request_time"] <= now + 1
    earlier = admin_get(gw, "/api/admin/v1/metrics/clients/app", start=0, end=int(started) - 10)
    assert earlier["total_requests"] == 0 and earlier["last_request_time"] is None
    assert admin_get(gw, "/admin/v1/metrics/clients/ops")["total_requests"] == 0  # known, unused
    with gw.client(MASTER_KEY) as api:
        assert api.get("/admin/v1/metrics/clients/nobody").status_code == 404
        bad = api.get("/admin/v1/metrics/clients/app", params={"start": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "start"
        assert api.get("/admin/v1/metrics/clients/app", params={"start": 20, "end": 10}).status_code == 400


def test_stats_group_by_provider_model_client_and_key(gw: Gateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    written(gw, 4)
    by_model = admin_get(gw, "/admin/v1/stats", group_by="model")
    assert by_model["group_by"] == "model"
    assert {g["key"]: g["requests"] for g in by_model["groups"]} == {"fake-gpt-4o": 3, "fake-gpt-4o-mini": 1}
    groups = admin_get(gw, "/admin/v1/stats", group_by="provider", client_key="app")["groups"]
    assert sum(g["requests"] for g in groups) == 4 and sum(g["errors"] for g in groups) == 1
    [provider] = groups  # the refused request too is the provider's (and its key's) error
    assert provider["key"] == "fake" and provider["requests"] == 4 and provider["errors"] == 1
    assert provider["tokens"] == provider["tokens_in"] + provider["tokens_out"] > 0
    assert provider["cost"] > 0 and provider["avg_latency_ms"] > 0
    keys = admin_get(gw, "/admin/v1/stats", group_by="key")["groups"]
    assert {g["key"] for g in keys} <= {"fake#1", "fake#2"} and sum(g["requests"] for g in keys) == 4
    assert admin_get(gw, "/admin/v1/stats", group_by="client")["groups"][0]["key"] == "app"
    assert admin_get(gw, "/admin/v1/stats", group_by="client", client_key="ops")["groups"] == []
    with gw.client(MASTER_KEY) as api:
        bad = api.get("/admin/v1/stats", params={"group_by": "colour"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"


def test_timeseries_buckets_every_interval_of_the_period(gw: Gateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    written(gw, 4)
    now = time.time()
    answer = admin_get(gw, "/admin/v1/timeseries", bucket_s=60, start=now - 600, end=now)
    [series] = answer["series"]
    assert answer["bucket_s"] == 60 and series["key"] == "all"
    assert len(series["points"]) in (10, 11)  # every minute of the period, empty ones too
    assert all(p["t"] % 60 == 0 for p in series["points"])
    assert sum(p["requests"] for p in series["points"]) == 4 and sum(p["errors"] for p in series["points"]) == 1
    busy = [p for p in series["points"] if p["requests"]]
    assert all(p["p50_ms"] > 0 and p["p99_ms"] >= p["p50_ms"] and p["overhead_p50_ms"] is not None for p in busy)
    assert all(p["p50_ms"] is None for p in series["points"] if not p["requests"])
    grouped = admin_get(gw, "/admin/v1/timeseries", bucket_s=3600, group_by="model")
    assert {s["key"]: sum(p["requests"] for p in s["points"]) for s in grouped["series"]} == {
        "fake-gpt-4o": 3, "fake-gpt-4o-mini": 1}
    with gw.client(MASTER_KEY) as api:
        too_many = api.get("/admin/v1/timeseries", params={"bucket_s": 1, "start": 0, "end": now})
        assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "bucket_s"
        assert api.get("/admin/v1/timeseries", params={"bucket_s": 0}).status_code == 400


def test_recent_requests_are_newest_first(gw: Gateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    written(gw, 4)
    rows = admin_get(gw, "/admin/v1/requests/recent", limit=3)["requests"]
    assert len(rows) == 3 and [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    assert rows[0]["status"] == 400 and rows[0]["error_code"] == "upstream_rejected_request"
    assert set(rows[1]) == {"time", "request_id", "client_id", "provider", "model", "key_label", "status",
                            "error_code", "tokens_in", "tokens_out", "cost", "latency_ms", "overhead_ms",
                            "stream", "cache_hit", "saved_usd", "cache_read_tokens", "cache_write_tokens",
                            "reasoning_tokens", "kind", "bytes_in", "bytes_out"}
    assert rows[1]["client_id"] == "app" and rows[1]["key_label"].startswith("fake#")
    assert len(admin_get(gw, "/admin/v1/requests/recent")["requests"]) == 4
    with gw.client(MASTER_KEY) as api:
        assert api.get("/admin/v1/requests/recent", params={"limit": 0}).status_code == 400


def test_the_summary_at_admin_metrics(gw: Gateway, fake: FakeUpstream) -> None:
    traffic(gw, fake)
    written(gw, 4)
    summary = admin_get(gw, "/admin/metrics")
    assert summary["total_requests"] == 4 and summary["success_rate"] == 0.75
    assert set(summary["cost_by_provider"]) == {"fake"} and summary["cost_by_provider"]["fake"] > 0
    assert summary["active_clients"] == 1 and summary["active_providers"] == 1
    assert summary["configured_providers"] == 1 and summary["configured_clients"] == 2


def read_events(gw: Gateway, into: list[dict], ready: threading.Event, stop: threading.Event) -> None:
    with httpx.stream("GET", gw.base_url + "/admin/v1/requests/stream", timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        ready.set()
        for line in stream.iter_lines():
            if line.startswith("data: "):
                into.append(json.loads(line[6:]))
            if stop.is_set():
                return


def test_the_live_request_log_streams_each_finished_request(gw: Gateway, fake: FakeUpstream) -> None:
    events: list[dict] = []
    ready, stop = threading.Event(), threading.Event()
    reader = threading.Thread(target=read_events, args=(gw, events, ready, stop), daemon=True)
    reader.start()
    assert ready.wait(10)
    time.sleep(0.5)  # the feed follows rows written from now on
    traffic(gw, fake)
    wait_until(lambda: len(events) >= 4, what="four live events")
    assert [e["status"] for e in events[:4]] == [200, 200, 200, 400]
    assert {e["client_id"] for e in events} == {"app"}
    stop.set()
    with gw.client(CLIENT_KEY) as app:  # one more request wakes the reader so it can leave
        app.post("/v1/chat/completions", json=CHAT)
    reader.join(10)
    assert CLIENT_KEY not in json.dumps(events)
