"""The operator's scripts end to end, in a copy of the repository.

``./setup.sh``, ``./start.sh`` (native mode), ``./virtual-key.sh`` and ``./stop.sh`` run for
real in a temporary copy of the checkout; an official ``openai`` SDK client then talks to the
gateway they started, which talks to the ``fake`` upstream on loopback.

To stay fast and offline, setup.sh builds its ``.venv`` from the packages of the interpreter
running this test (``GATEWAY_SETUP_SITE_PACKAGES``) and pip finds every requirement already
satisfied. ``pip install -e .`` then runs with ``--no-index --no-build-isolation`` when this
interpreter has ``wheel`` (``./setup.sh --dev`` installs it), else with build isolation, which
downloads setuptools and wheel once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.fake_upstream import DEFAULT_TEXT, FakeUpstream

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_KEY = "sk-upstream-scripts-test-key-0001"
KEY_RE = re.compile(r"^sk-[A-Za-z0-9_-]{20,}$", re.MULTILINE)
# Never copied: local state and secrets of the checkout under test.
SKIP_TOP = {".git", ".venv", "data", "logs", "run", ".env", ".env.bak", "build", "dist", ".pytest_cache",
            ".ruff_cache", ".mypy_cache", ".benchmarks"}
SKIP_FILES = {"config/config.yaml", "config/config.yaml.bak"}

pytestmark = pytest.mark.slow


def repo_files() -> list[str]:
    """Tracked files plus new, not ignored ones (``git ls-files``); a plain walk without git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True, timeout=30).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        files = []
        for path in REPO.rglob("*"):
            rel = path.relative_to(REPO)
            if rel.parts[0] in SKIP_TOP or "__pycache__" in rel.parts or rel.suffix == ".pyc" \
                    or rel.parts[0].endswith(".egg-info"):
                continue
            files.append(rel.as_posix())
    return [f for f in files
            if f not in SKIP_FILES and f.split("/")[0] not in SKIP_TOP and (REPO / f).is_file()]


def copy_repo(dest: Path) -> Path:
    for rel in repo_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)  # keeps the executable bits
    return dest


def script_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GATEWAY_", "OPENAI_", "PYTHONPATH", "VIRTUAL_ENV", "VIRTUAL_KEY"))}
    site_dirs = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    offline = importlib.util.find_spec("wheel") is not None
    env.update({
        "CI": env.get("CI", "true"),
        "GATEWAY_NATIVE": "1",
        "PYTHON": sys.executable,
        "GATEWAY_SETUP_SITE_PACKAGES": os.pathsep.join(site_dirs),
        "GATEWAY_SETUP_PIP_ARGS": "--no-index --no-build-isolation" if offline else "",
        # The reused packages bring no console scripts into the new .venv/bin: `gateway serve`
        # finds this interpreter's `granian` on PATH.
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        "GATEWAY_START_TIMEOUT": "45",
    })
    return env


def run(workdir: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=workdir, env=script_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def kill_leftover(workdir: Path) -> None:
    """If the test failed half way, do not leave a gateway behind."""
    pid_file = workdir / "run" / "gateway.pid"
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"granian" not in cmdline and b"gateway" not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def env_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_setup_start_virtual_key_stop(tmp_path: Path, fake: FakeUpstream) -> None:
    work = copy_repo(tmp_path / "gw")
    try:
        _scenario(work, tmp_path, fake)
    finally:
        kill_leftover(work)


def _scenario(work: Path, tmp_path: Path, fake: FakeUpstream) -> None:
    # ---------------------------------------------------------------- setup.sh
    setup = run(work, "./setup.sh", "--random-ports", timeout=300)
    assert setup.returncode == 0, show(setup)
    assert "[setup]" in setup.stdout
    env_file = work / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = env_values(env_file)
    master = values["GATEWAY_MASTER_KEY"]
    assert KEY_RE.fullmatch(master), "GATEWAY_MASTER_KEY is not an sk- key"
    assert master not in setup.stdout + setup.stderr, "setup.sh printed the master key"
    port = int(values["GATEWAY_PORT"])
    assert 49152 <= port <= 65535
    config = work / "config" / "config.yaml"
    assert config.read_text() == (work / "config" / "config.example.yaml").read_text()
    for name in ("data", "logs"):
        assert (work / name).is_dir()
    assert (work / ".venv" / "bin" / "python").exists()

    # ---------------------------------------------------------------- setup.sh again keeps everything
    env_before = env_file.read_bytes()
    again = run(work, "./setup.sh", timeout=300)
    assert again.returncode == 0, show(again)
    assert "kept the existing .env" in again.stdout and "kept the existing config/config.yaml" in again.stdout
    assert env_file.read_bytes() == env_before
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert not (work / ".env.bak").exists()

    # ---------------------------------------------------------------- point the openai provider at the fake
    data = yaml.safe_load(config.read_text())
    provider = next(p for p in data["llm_providers"] if p["id"] == "openai")
    provider["base_url"] = fake.base_url
    provider["api_keys"] = [UPSTREAM_KEY]
    config.write_text(yaml.safe_dump(data, sort_keys=False))

    # ---------------------------------------------------------------- start.sh
    started = run(work, "./start.sh", timeout=90)
    assert started.returncode == 0, show(started)
    match = re.search(r"Gateway running at (http://127\.0\.0\.1:(\d+))/v1 \(pid (\d+), logs: logs/gateway\.log\)",
                      started.stdout)
    assert match, show(started)
    base, pid = match.group(1), int(match.group(3))
    assert int(match.group(2)) == port
    pid_file = work / "run" / "gateway.pid"
    assert pid_file.read_text().strip() == str(pid)
    assert pid_alive(pid)
    assert httpx.get(base + "/health", timeout=5).json() == {"status": "healthy"}
    assert httpx.get(base + "/health/readiness", timeout=5).status_code == 200

    # ---------------------------------------------------------------- a second start.sh starts nothing
    second = run(work, "./start.sh", timeout=60)
    assert second.returncode == 0, show(second)
    assert "already running" in second.stdout, show(second)
    assert pid_file.read_text().strip() == str(pid)
    assert (work / "logs" / "gateway.log").read_text().count("start.sh: starting the gateway") == 1

    # ---------------------------------------------------------------- another copy on the same port fails clearly
    other = copy_repo(tmp_path / "gw-other")
    (other / ".venv").symlink_to(work / ".venv")
    shutil.copy2(env_file, other / ".env")
    shutil.copy2(config, other / "config" / "config.yaml")
    clash = run(other, "./start.sh", timeout=60)
    assert clash.returncode == 1, show(clash)
    assert f"port {port}" in clash.stderr and "already in use" in clash.stderr, show(clash)
    assert not (other / "run" / "gateway.pid").exists()
    assert pid_alive(pid)

    # ---------------------------------------------------------------- virtual-key.sh
    created = run(work, "./virtual-key.sh", "--id", "ci-app", timeout=60)
    assert created.returncode == 0, show(created)
    keys = KEY_RE.findall(created.stdout)
    assert len(keys) == 1, show(created)
    key = keys[0]
    assert "shown only this once" in created.stdout
    assert "OK: the running gateway accepts the new key" in created.stdout, show(created)
    config_text = config.read_text()
    assert "id: ci-app" in config_text and key not in config_text
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = env_values(env_file)
    assert values["VIRTUAL_KEY"] == key
    assert values["GATEWAY_MASTER_KEY"] == master

    # ---------------------------------------------------------------- the official SDK through the gateway
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
    completion = client.chat.completions.create(model="openai:gpt-4o",
                                                messages=[{"role": "user", "content": "Say hello"}])
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert fake.count() == 1
    upstream = fake.requests[-1]
    assert upstream.api_key == UPSTREAM_KEY
    assert upstream.json["model"] == "gpt-4o"

    log_text = (work / "logs" / "gateway.log").read_text(errors="replace")
    assert key not in log_text, "the client key leaked into logs/gateway.log"
    assert master not in log_text, "the master key leaked into logs/gateway.log"

    # ---------------------------------------------------------------- stop.sh, twice
    stopped = run(work, "./stop.sh", timeout=90)
    assert stopped.returncode == 0, show(stopped)
    assert not pid_alive(pid)
    assert not pid_file.exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health", timeout=2)
    stopped_again = run(work, "./stop.sh", timeout=60)
    assert stopped_again.returncode == 0, show(stopped_again)
    assert "not running" in stopped_again.stdout
