"""Fixtures: fake upstreams on loopback, and the real gateway under Granian on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.store.servers import RedisServer, running_redis

REPO = Path(__file__).resolve().parent.parent
MASTER_KEY = "sk-test-master-key-0123456789"
CLIENT_KEY = "sk-test-client-key-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """One gateway process (``python -m gateway serve``) with its own config directory."""

    def __init__(self, workdir: Path, config: str, env: dict[str, str] | None = None, workers: int = 1,
                 python: str | None = None):
        self.workdir = workdir
        self.python = python or sys.executable  # another environment's interpreter (the plugin tests' venv)
        self.port = free_port()
        self.config_path = workdir / "config" / "config.yaml"
        self.env_path = workdir / ".env"
        self.log_path = workdir / "gateway.log"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(textwrap.dedent(config))
        self.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OPENAI_"))}
        self.env.update({
            "GATEWAY_CONFIG": str(self.config_path), "GATEWAY_ENV_FILE": str(self.env_path),
            "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.port), "GATEWAY_WORKERS": str(workers),
            "GATEWAY_DATA_DIR": str(workdir / "data"), "PYTHONPATH": str(REPO),
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        })
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Gateway:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([self.python, "-m", "gateway", "serve"], cwd=self.workdir, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.base_url + "/health/readiness", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not become ready:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, key: str = CLIENT_KEY, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"},
                            timeout=kwargs.pop("timeout", 30), **kwargs)

    def readiness(self) -> dict:
        """The readiness details (they need the master or an admin key)."""
        return httpx.get(self.base_url + "/health/readiness", headers=ADMIN_HEADERS, timeout=5).json()

    def metrics(self) -> str:
        """The Prometheus text of ``/metrics`` (it needs the master or an admin key)."""
        response = httpx.get(self.base_url + "/metrics", headers=ADMIN_HEADERS, timeout=10)
        response.raise_for_status()
        return response.text

    def write_config(self, config: str) -> None:
        """Replace the config atomically (write a temp file, rename it over)."""
        tmp = self.config_path.with_name(".config.yaml.tmp")
        tmp.write_text(textwrap.dedent(config))
        os.replace(tmp, self.config_path)

    def wait_for_version_change(self, old: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version = self.readiness()["config"]["version"]
            if version != old:
                return version
            time.sleep(0.05)
        raise AssertionError(f"config version stayed {old}; logs:\n{self.logs()[-3000:]}")


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeUpstream) -> Iterator[FakeUpstream]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture(scope="session")
def fake_server_2() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake2(fake_server_2: FakeUpstream) -> Iterator[FakeUpstream]:
    fake_server_2.reset()
    yield fake_server_2
    fake_server_2.reset()


def basic_config(fake: FakeUpstream, extra: str = "") -> str:
    """A config with one provider (two keys) on ``fake`` and one client; ``extra`` is appended YAML."""
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 5
      connect_timeout_s: 2
    llm_providers:
      - id: fake
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111", "sk-upstream-key-two-222222"]
        models: [fake-gpt-4o, fake-gpt-4o-mini]
        pricing: {{input_token_cost: 0.5, output_token_cost: 1.5}}
    model_aliases:
      fast: fake:fake-gpt-4o-mini
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """) + textwrap.dedent(extra)


@pytest.fixture
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(config: str, env: dict[str, str] | None = None, workers: int = 1, python: str | None = None) -> Gateway:
        gateway = Gateway(tmp_path_factory.mktemp("gw"), config, env, workers, python)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="module")
def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Gateway]]:
    """A gateway started once for a module's tests (``start(config)``), stopped after them."""
    started: list[Gateway] = []

    def start(config: str) -> Gateway:
        gateway = Gateway(tmp_path_factory.mktemp("gw"), config)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    return start_gateway(basic_config(fake))


# --- real Redis for the store wiring tests: Debian's redis-server on loopback --------------------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()
