"""``./setup.sh --profile … --with-chat --with-monitoring`` in a copy of the checkout (as
``test_scripts.py`` runs the scripts), then the compose profiles it prepares resolved by the real
``docker-compose config`` with the ``.env`` it wrote: Open WebUI gets the gateway's address and its
own client key, Prometheus the key file, the gateway container its CPU and memory limits."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.test_scripts import KEY_RE, copy_repo, run, show

pytestmark = pytest.mark.slow
COMPOSE = shutil.which("docker-compose")


def env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_setup_prepares_profiles_chat_and_monitoring(tmp_path: Path) -> None:
    work = copy_repo(tmp_path / "repo")
    done = run(work, "./setup.sh", "--profile", "medium", "--with-chat", "--with-monitoring", timeout=300)
    assert done.returncode == 0, show(done)
    env = env_values(work / ".env")
    assert (env["GATEWAY_WORKERS"], env["GATEWAY_CPUS"], env["GATEWAY_MEMORY"]) == ("2", "2", "768m")
    assert env["COMPOSE_PROFILES"] == "chat,monitoring"
    # Open WebUI's key: printed once, kept in .env, only its hash in the config
    chat_key = env["OPENWEBUI_API_KEY"]
    assert KEY_RE.fullmatch(chat_key) and done.stdout.count(chat_key) == 1 and chat_key not in done.stderr
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    clients = {c["id"]: c for c in config["api_keys"]}
    assert clients["open-webui"]["key_hash"] == digest(chat_key) and not clients["open-webui"].get("admin")
    # Prometheus's key: an admin client's, in a file of a mode-700 directory, never printed
    secrets = work / "run" / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    scrape_key = (secrets / "prometheus.key").read_text().strip()
    assert clients["prometheus"] == {"id": "prometheus", "key_hash": digest(scrape_key), "allowed_providers": ["*"],
                                     "admin": True}
    password = (secrets / "grafana-admin-password").read_text().strip()
    assert len(password) >= 16 and password not in done.stdout + done.stderr and scrape_key not in done.stdout
    # two workers: the new config shares state through Redis (the compose service, or a local one)
    assert config["storage"] == {"runtime": {"type": "redis", "addr": "${GATEWAY_REDIS_ADDR:-127.0.0.1:6379}"}}
    # a second run keeps every key and adds no client
    again = run(work, "./setup.sh", "--with-chat", "--with-monitoring", timeout=300)
    assert again.returncode == 0, show(again)
    assert env_values(work / ".env")["OPENWEBUI_API_KEY"] == chat_key and chat_key not in again.stdout
    assert (secrets / "prometheus.key").read_text().strip() == scrape_key
    assert len(yaml.safe_load((work / "config" / "config.yaml").read_text())["api_keys"]) == 2

    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (scripts/lint_container.sh installs it)")
    resolved = subprocess.run([COMPOSE, "--env-file", ".env", "-f", "compose/compose.yaml", "--profile", "chat",
                               "--profile", "monitoring", "config"], cwd=work, capture_output=True, text=True,
                              timeout=60)
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    webui = services["open-webui"]["environment"]
    assert webui["OPENAI_API_BASE_URL"] == "http://gateway:2906/v1" and webui["OPENAI_API_KEY"] == chat_key
    assert (float(services["gateway"]["cpus"]), services["gateway"]["mem_limit"]) == (2.0, "768m")
    # docker-compose 1.29 prints a volume as "source:target:mode", Compose v2 as a mapping
    volumes = [(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
               for v in services["prometheus"]["volumes"]]
    assert (str(secrets / "prometheus.key"), "/etc/prometheus/gateway.key") in volumes


def test_setup_refuses_an_unknown_profile(tmp_path: Path) -> None:
    work = copy_repo(tmp_path / "repo")
    done = run(work, "./setup.sh", "--profile", "huge", timeout=60)
    assert done.returncode == 1 and "--profile must be small, medium or large, not 'huge'" in done.stderr
    assert not (work / ".env").exists()
