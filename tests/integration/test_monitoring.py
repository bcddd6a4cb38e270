"""The ``monitoring`` compose profile's Prometheus and Grafana files, with Debian's real ``prometheus``.

* ``promtool check config`` accepts ``compose/prometheus/prometheus.yml`` as shipped (only the
  path of the key file changes: promtool checks that it exists);
* a real Prometheus scrapes a running gateway with that scrape config (the container's DNS
  discovery replaced by the gateway's loopback address, a 1 s interval), sending the key of an
  ``admin: true`` client from the credentials file, as the profile does;
* the gateway serves traffic that exercises every panel's metric: answers, client errors, a 429
  (a key's cooldown), a 401 (a quarantined key), response cache hits, a config reload;
* every query of every panel of ``compose/grafana/dashboards/gateway.json`` (``$__rate_interval``
  as Grafana would fill it for a short range: 1m) runs through Prometheus's HTTP API and returns data;
* the dashboard's data source is the provisioned one, and the provisioning points at the
  directory compose.yaml mounts the dashboards into.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, Gateway, basic_config, free_port
from tests.fake_upstream import Behaviour, FakeUpstream

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="needs prometheus and promtool (Debian package prometheus)")
COMPOSE = REPO / "compose"
SCRAPE_KEY = "sk-prometheus-scrape-key-123456"
APP_KEY = "sk-test-client-key-0123456789"  # basic_config's client
RATE_INTERVAL = "1m"


def monitoring_config(fake: FakeUpstream) -> str:
    scraper = f"  - id: prometheus\n    key: {SCRAPE_KEY}\n    admin: true\n"
    return (basic_config(fake) + scraper).replace("  fast: fake:fake-gpt-4o-mini", "  fast: fake:fake-gpt-4o-mini\n"
                 "  cached: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 300, max_mb: 8}}")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def scrape_config(key_file: Path, target: str | None = None) -> dict[str, Any]:
    """compose/prometheus/prometheus.yml with the key file's path (and, given a target, the target and
    a 1 s interval instead of the Compose network's DNS discovery)."""
    config = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    job["authorization"]["credentials_file"] = str(key_file)
    if target is not None:
        del job["dns_sd_configs"]
        job["static_configs"] = [{"targets": [target]}]
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    return config


def start_prometheus(config: dict[str, Any], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert PROMETHEUS is not None
    log = (workdir / "prometheus.log").open("wb")
    return subprocess.Popen([PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
                            stdout=log, stderr=subprocess.STDOUT)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, ValueError):  # not listening yet, or not ready (a plain-text 503)
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def traffic(gw: Gateway, fake: FakeUpstream) -> None:
    """Requests that move every metric a panel shows."""
    with gw.client(APP_KEY) as client:
        def chat(model: str, stream: bool = False) -> int:
            return client.post("/v1/chat/completions", json={"model": model, "stream": stream, "messages": [
                {"role": "user", "content": "hello there"}]}).status_code

        assert chat("fast") == 200 and chat("fake:fake-gpt-4o", stream=True) == 200
        assert chat("cached") == 200 and chat("cached") == 200  # a miss (or a hit of the last round), a hit
        assert chat("no-such-model") == 400  # a client error
        fake.script(Behaviour(status=429, headers={"retry-after": "1"}))  # a key's cooldown
        fake.script(Behaviour(status=401))  # a key the upstream rejects: quarantined
        chat("fast")  # 200 from the other key, or 503 once neither key is left: either way counted
        chat("fast")
        time.sleep(1.1)  # the cooldown ends


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panels(panel) if panel.get("panels") else ()


def test_prometheus_scrapes_the_gateway_and_every_panel_returns_data(start_gateway, fake, tmp_path: Path) -> None:
    key_file = tmp_path / "gateway.key"
    key_file.write_text(SCRAPE_KEY + "\n")
    shipped = tmp_path / "shipped.yml"
    shipped.write_text(yaml.safe_dump(scrape_config(key_file)))
    checked = promtool("check", "config", str(shipped))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    gw = start_gateway(monitoring_config(fake))
    traffic(gw, fake)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_prometheus(scrape_config(key_file, f"127.0.0.1:{gw.port}"), tmp_path, port)
    try:
        wait_for(lambda: any(r["value"][1] == "1" for r in query(url, 'up{job="gateway"}')), 60,
                 "Prometheus to scrape the gateway with the key")
        version = gw.readiness()["config"]["version"]
        gw.write_config(monitoring_config(fake).replace("  fast:", "  another: fake:fake-gpt-4o\n  fast:"))
        gw.wait_for_version_change(version)
        traffic(gw, fake)
        time.sleep(3)  # a few more scrapes after the second round, so every rate() has two samples
        dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "gateway.json").read_text())
        empty = []
        queried = 0
        for panel in panels(dashboard):
            for target in panel.get("targets", ()):
                queried += 1
                if not query(url, target["expr"].replace("$__rate_interval", RATE_INTERVAL)):
                    empty.append(f"{panel['title']}: {target['expr']}")
        assert queried >= 20 and not empty, empty
    finally:
        proc.terminate()
        proc.wait(20)


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] if volume.count(":") >= 2 else volume.split(":", 1)
                  for volume in grafana["volumes"])
    datasources = yaml.safe_load((COMPOSE / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
                                 .read_text())["datasources"]
    providers = yaml.safe_load((COMPOSE / "grafana" / "provisioning" / "dashboards" / "gateway.yaml")
                               .read_text())["providers"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    assert datasources[0]["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "gateway.json").read_text())
    uids = {t["datasource"]["uid"] for p in panels(dashboard) for t in p.get("targets", ())}
    assert uids == {datasources[0]["uid"]}
    titles = [p["title"] for p in panels(dashboard) if p["type"] == "row"]
    assert "Guardrails and MCP tool calls" in titles  # where those panels go
    prometheus = compose["services"]["prometheus"]
    key_mount = next(v for v in prometheus["volumes"] if v.startswith("../run/secrets/prometheus.key:"))
    shipped = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    assert key_mount.split(":")[1] == shipped["scrape_configs"][0]["authorization"]["credentials_file"]
