"""Prometheus per client: ``<namespace>_client_requests_total``,
``_client_errors_total`` and ``_client_cost_total`` labelled ``client_id``, under ``metrics.namespace``.

The main test proves the client-management document's alert rules (``../shared/reference/
client-management.md``, group ``client-usage``) work unchanged against what a running gateway
exposes, with Debian ``prometheus``'s ``promtool test rules``:

* a gateway with ``metrics: {namespace: coo_llm}``, two workers (prometheus_client's
  multiprocess mode) and the client ``prod-app-001`` serves rounds of real requests; the fake
  upstream answers 500 to some of them (``max_attempts: 1``, so each becomes an error answer);
* after every round the test scrapes ``/metrics`` with the master key, as Prometheus would;
* scrape *k* becomes the sample at minute *k* of the promtool input series (``interval: 1m``, a
  common scrape interval; the labels Prometheus adds on scrape, ``job`` and ``instance``, are
  added). The values are the gateway's own counters; only the time axis is compressed: a round
  sent in a fraction of a second stands for one minute of traffic;
* the timeline: minutes 0-19 cheap traffic with 0 or 1 error in 10 (4-6 % over any 5 minutes),
  minutes 20-43 dear traffic with 2 errors in 8 (25 %), minutes 44-51 dear traffic, no errors;
* the rule group is copied from the document's YAML block at test time, byte for byte, and
  ``promtool test rules`` checks: nothing fires at 19m; ClientErrorSpike (error ratio > 10 % for
  5m) fires at 32m while HighClientCost (> 10 USD/s over 1h, for 15m) is still pending; both fire
  at 43m; at 51m, after 5 error-free minutes, only HighClientCost fires.

``promtool check metrics`` lints the scraped text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

PROMTOOL = shutil.which("promtool")
DOCUMENT = REPO.parent / "shared" / "reference" / "client-management.md"
CLIENT_ID = "prod-app-001"
CLIENT_KEY = "sk-prod-app-key-123"  # the document's key for prod-app-001
COUNTERS = ("client_requests_total", "client_errors_total", "client_cost_total")
SCRAPE_LABELS = {"job": "coo-llm", "instance": "gateway:2906"}  # what Prometheus adds on scrape
CHEAP, DEAR = "fake:fake-gpt-4o-mini", "fake:fake-gpt-4o"
Labels = tuple[tuple[str, str], ...]
Scrape = dict[tuple[str, Labels], float]

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (Debian package prometheus)")


def config(fake: FakeUpstream, namespace: str = "coo_llm", client: str = CLIENT_ID) -> str:
    # USD per 1K tokens: the dear model costs ~1,000 USD per token, so a minute of its traffic
    # moves a 1h rate past the document's 10 USD/s
    return f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 10
      connect_timeout_s: 2
      log_requests: false
    routing:
      max_attempts: 1
      circuit_breaker_failures: 50
    metrics:
      namespace: {namespace}
    storage: {{type: memory}}  # nothing here is limited; memory lets two workers run without Redis
    llm_providers:
      - id: fake
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models:
          - {{name: fake-gpt-4o-mini, pricing: {{input_token_cost: 0.0001, output_token_cost: 0.0002}}}}
          - {{name: fake-gpt-4o, pricing: {{input_token_cost: 1000000, output_token_cost: 1000000}}}}
    api_keys:
      - id: {client}
        key: {CLIENT_KEY}
    """


# --- the document's rule group, copied at test time --------------------------------------------
def document_rules() -> str:
    """The YAML block of the document that holds the ``client-usage`` group, exactly as written."""
    assert DOCUMENT.is_file(), f"the client-management document is not at {DOCUMENT}"
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOCUMENT.read_text(), re.S | re.M)
    found = [b for b in blocks if "name: client-usage" in b]
    assert len(found) == 1, "expected one YAML block with the client-usage group in the document"
    return found[0]


def rule(rules_text: str, alert: str) -> dict[str, Any]:
    group = yaml.safe_load(rules_text)["groups"][0]
    found: dict[str, Any] = next(r for r in group["rules"] if r["alert"] == alert)
    return found


# --- traffic and scrapes ------------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    rounds: int
    requests: int  # per round
    failures: tuple[int, ...]  # failing requests per round, cycled
    model: str


TIMELINE = (Phase(20, 10, (0, 1), CHEAP),  # minutes 0-19
            Phase(24, 8, (2,), DEAR),  # minutes 20-43
            Phase(8, 8, (0,), DEAR))  # minutes 44-51


def send_round(client: httpx.Client, fake: FakeUpstream, n: int, failing: int, model: str) -> None:
    """``n`` requests one after the other; the fake answers 500 to the last ``failing`` of them."""
    fake.script(*[Behaviour(status=500) if i >= n - failing else Behaviour() for i in range(n)])
    for i in range(n):
        answer = client.post("/v1/chat/completions", json={"model": model, "messages": [
            {"role": "user", "content": f"hello {i}"}]})
        if i >= n - failing:
            assert answer.status_code >= 500, answer.text
        else:
            assert answer.status_code == 200, answer.text


def client_counters(text: str, namespace: str, client_id: str) -> dict[str, float]:
    """The client's three counters (by their name without the namespace) in one scrape."""
    found: dict[str, float] = {}
    for (name, labels), value in client_samples(text, namespace).items():
        if dict(labels).get("client_id") == client_id:
            short = name.removeprefix(namespace + "_")
            found[short] = found.get(short, 0.0) + value
    return found


def client_samples(text: str, namespace: str) -> dict[tuple[str, Labels], float]:
    """Every sample of the three per-client counters in one scrape, by name and label set as exposed."""
    names = {f"{namespace}_{c}" for c in COUNTERS}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name in names}


def scrape(gw: Gateway) -> str:
    return gw.metrics()  # with the master key (GET /metrics needs it)


def run_timeline(gw: Gateway, fake: FakeUpstream) -> tuple[list[Scrape], str, int, int]:
    """Send every round, scraping after each; the scrapes, the last text, requests and failures sent."""
    scrapes: list[Scrape] = []
    text, sent, failed = "", 0, 0
    with gw.client(CLIENT_KEY) as client:
        for phase in TIMELINE:
            for r in range(phase.rounds):
                failing = phase.failures[r % len(phase.failures)]
                send_round(client, fake, phase.requests, failing, phase.model)
                sent, failed = sent + phase.requests, failed + failing
                text = scrape(gw)
                scrapes.append(client_samples(text, "coo_llm"))
    return scrapes, text, sent, failed


# --- the promtool unit-test file ----------------------------------------------------------------
def input_series(scrapes: list[Scrape]) -> list[dict[str, str]]:
    """One promtool series per exposed (name, labels), with the scrape labels added; ``_`` where a
    scrape did not have it (as Prometheus would see a series that does not exist yet)."""
    series = []
    for name, labels in sorted({key for s in scrapes for key in s}):
        selector = ", ".join(f'{k}="{v}"' for k, v in sorted({**dict(labels), **SCRAPE_LABELS}.items()))
        values = " ".join(repr(s[(name, labels)]) if (name, labels) in s else "_" for s in scrapes)
        series.append({"series": f"{name}{{{selector}}}", "values": values})
    return series


# minute -> the alerts that must be firing then (the others must not)
EXPECTED = {19: set(), 32: {"ClientErrorSpike"}, 43: {"ClientErrorSpike", "HighClientCost"},
            51: {"HighClientCost"}}


def alert_tests(rules_text: str) -> list[dict[str, Any]]:
    tests = []
    for minute, firing in EXPECTED.items():
        for alert in ("HighClientCost", "ClientErrorSpike"):
            spec = rule(rules_text, alert)
            expected = [{"exp_labels": {**spec["labels"], "client_id": CLIENT_ID, **SCRAPE_LABELS},
                         "exp_annotations": spec["annotations"]}] if alert in firing else []
            tests.append({"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": expected})
    return tests


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def coo_gateway(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Iterator[Gateway]:
    yield start_gateway(config(fake), workers=2)


@needs_promtool
def test_document_alert_rules_fire_on_series_scraped_from_the_gateway(coo_gateway: Gateway, fake: FakeUpstream,
                                                                      tmp_path: Path) -> None:
    rules_text = document_rules()
    scrapes, last_text, sent, failed = run_timeline(coo_gateway, fake)

    # the counters are the gateway's: every request and every failure counted once, across two workers
    final = client_counters(last_text, "coo_llm", CLIENT_ID)
    assert final["client_requests_total"] == sent and final["client_errors_total"] == failed
    assert final["client_cost_total"] > 36_000  # more than an hour at the document's 10 USD/s
    assert len(scrapes) == sum(p.rounds for p in TIMELINE)
    assert CLIENT_KEY not in last_text and "sk-upstream" not in last_text

    (tmp_path / "client-usage.rules.yml").write_text(rules_text)
    checked = promtool("check", "rules", "client-usage.rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    unit = {"rule_files": ["client-usage.rules.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": input_series(scrapes),
                       "alert_rule_test": alert_tests(rules_text)}]}
    (tmp_path / "client-usage.test.yml").write_text(yaml.safe_dump(unit, sort_keys=False))
    result = promtool("test", "rules", "client-usage.test.yml", cwd=tmp_path)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- test file:\n" + (
        tmp_path / "client-usage.test.yml").read_text()
    assert "SUCCESS" in result.stdout + result.stderr


@needs_promtool
def test_the_scraped_text_passes_promtool_check_metrics(start_gateway: Callable[..., Gateway],
                                                        fake: FakeUpstream) -> None:
    for workers in (1, 2):  # the single-process registry and the multiprocess collector
        gw = start_gateway(config(fake), workers=workers)
        with gw.client(CLIENT_KEY) as client:
            send_round(client, fake, 3, 1, CHEAP)
        text = scrape(gw)
        linted = promtool("check", "metrics", stdin=text)
        assert linted.returncode == 0, f"workers={workers}: {linted.stdout}{linted.stderr}"
        gw.stop()


# --- the namespace, the labels, what counts as an error -----------------------------------------
def families(text: str) -> dict[str, set[str]]:
    """Family name -> the label names its samples carry."""
    return {f.name: {k for s in f.samples for k in s.labels} for f in text_string_to_metric_families(text)}


def test_every_gateway_metric_takes_the_namespace_and_errors_count_failed_streams(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gw = start_gateway(config(fake, client="app"))
    with gw.client(CLIENT_KEY) as client:
        send_round(client, fake, 2, 1, CHEAP)  # one answer, one 500
        fake.script(Behaviour(cut_after=2))  # a stream that begins (200) and breaks off
        with client.stream("POST", "/v1/chat/completions", json={
                "model": CHEAP, "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as streamed:
            assert streamed.status_code == 200
            assert "error" in streamed.read().decode()
    text = scrape(gw)
    names = families(text)
    ours = {n for n in names if not n.startswith(("process_", "python_"))}
    assert ours and all(n.startswith("coo_llm_") for n in ours), sorted(ours)
    assert {"coo_llm_requests", "coo_llm_request_duration_seconds", "coo_llm_config_info"} <= ours
    for counter in ("client_requests", "client_errors", "client_cost"):
        assert names[f"coo_llm_{counter}"] == {"client_id"}, counter  # one label: errors / requests divide
    counted = client_counters(text, "coo_llm", "app")
    assert counted["client_requests_total"] == 3
    assert counted["client_errors_total"] == 2  # the 500 and the stream that broke off after its 200
    assert counted["client_cost_total"] > 0


def test_the_namespace_changes_only_with_a_restart(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gw = start_gateway(config(fake))
    version = gw.readiness()["config"]["version"]
    gw.write_config(config(fake, namespace="other_ns"))
    gw.wait_for_version_change(version, timeout=15)
    assert gw.readiness()["last_reload"]["restart_needed"] == ["metrics.namespace"]
    deadline = time.monotonic() + 10
    while "metrics.namespace" not in gw.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "change only with a restart" in gw.logs() and "metrics.namespace" in gw.logs()
    with gw.client(CLIENT_KEY) as client:
        send_round(client, fake, 1, 0, CHEAP)
    text = scrape(gw)
    assert client_counters(text, "coo_llm", CLIENT_ID)["client_requests_total"] == 1
    assert "other_ns_" not in text

    gw.stop()  # a restart applies it
    gw.start()
    with gw.client(CLIENT_KEY) as client:
        send_round(client, fake, 1, 0, CHEAP)
    text = scrape(gw)
    assert client_counters(text, "other_ns", CLIENT_ID)["client_requests_total"] == 1
    assert "coo_llm_" not in text


@pytest.mark.parametrize("bad", ["coo-llm", "9lives", "trailing_", '""'])
def test_a_namespace_prometheus_cannot_use_is_a_config_error(tmp_path: Path, fake: FakeUpstream, bad: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(config(fake, namespace=bad)))
    checked = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(path), "--env-file",
                              str(tmp_path / "absent.env")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "metrics.namespace" in checked.stderr and "Prometheus name prefix" in checked.stderr
    path.write_text(textwrap.dedent(config(fake, namespace="coo_llm")))
    good = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(path), "--env-file",
                           str(tmp_path / "absent.env")], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
