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

import hashlib
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
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.server.oplock import operator_lock
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


def is_gateway_argv(argv: list[str], workdir: Path) -> bool:
    """Exactly the server command start.sh runs from ``workdir`` (or the Granian one it exec()s)."""
    venv_py = str(workdir / ".venv" / "bin" / "python")
    if argv[:2] != [venv_py, "-m"]:
        return False
    return argv[2:] == ["gateway", "serve"] or (argv[2:3] == ["granian"] and argv[-1] == "gateway.app:create_app")


def proc_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


def gateway_pids(workdir: Path) -> list[int]:
    """Every live process on this machine running the gateway of ``workdir``, from /proc."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return sorted(pid for pid in pids if is_gateway_argv(proc_argv(pid), workdir) and pid_alive(pid))


def pid_file_pid(workdir: Path) -> int:
    """The PID in run/gateway.pid (its first field; the second is the process's start time)."""
    return int((workdir / "run" / "gateway.pid").read_text().split()[0])


def stop_pid(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def kill_leftover(workdir: Path) -> None:
    """If the test failed half way, leave no gateway of this copy behind (found in /proc, not by pid file)."""
    for pid in gateway_pids(workdir):
        stop_pid(pid)


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
    assert pid_file_pid(work) == pid
    assert pid_alive(pid)
    assert httpx.get(base + "/health", timeout=5).json() == {"status": "healthy"}
    assert httpx.get(base + "/health/readiness", timeout=5).status_code == 200

    # ---------------------------------------------------------------- a second start.sh starts nothing
    second = run(work, "./start.sh", timeout=60)
    assert second.returncode == 0, show(second)
    assert "already running" in second.stdout, show(second)
    assert pid_file_pid(work) == pid
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


# ==================================================================== scripts run at the same time
# One installed copy for the tests below; each leaves no gateway running behind it.

PID_RE = re.compile(r"\(pid (\d+)")
LOCK_WAIT_NOTE = "waiting for run/gateway.lock"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = copy_repo(tmp_path_factory.mktemp("together") / "gw")
    setup = run(work, "./setup.sh", "--random-ports", timeout=300)
    assert setup.returncode == 0, show(setup)
    try:
        yield work
    finally:
        kill_leftover(work)


@pytest.fixture
def checkout(installed: Path) -> Iterator[Path]:
    """The installed copy, with no gateway running before and after the test."""
    kill_leftover(installed)
    (installed / "run" / "gateway.pid").unlink(missing_ok=True)
    try:
        yield installed
    finally:
        run(installed, "./stop.sh", timeout=90)
        kill_leftover(installed)


def spawn(workdir: Path, *argv: str, out: Path | None = None) -> subprocess.Popen[str]:
    sink = out.open("w") if out else subprocess.PIPE
    return subprocess.Popen(list(argv), cwd=workdir, env=script_env(), stdin=subprocess.DEVNULL, stdout=sink,
                            stderr=subprocess.STDOUT if out else subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 150) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out or "", err or "")


def base_url(workdir: Path) -> str:
    return f"http://127.0.0.1:{env_values(workdir / '.env')['GATEWAY_PORT']}"


def port_open(workdir: Path) -> bool:
    try:
        httpx.get(base_url(workdir) + "/health", timeout=2)
    except httpx.TransportError:
        return False
    return True


def start(workdir: Path) -> int:
    started = run(workdir, "./start.sh", timeout=120)
    assert started.returncode == 0 and "Gateway running at" in started.stdout, show(started)
    return pid_file_pid(workdir)


def proc_starttime(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def accepted(workdir: Path, key: str, within: float = 20) -> bool:
    """True once the running gateway answers GET /v1/models with ``key`` (it reloads within ~1 s)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = httpx.get(base_url(workdir) + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        if response.status_code == 200:
            return True
        time.sleep(0.2)
    return False


def clients_by_hash(workdir: Path) -> dict[str, dict[str, object]]:
    data = yaml.safe_load((workdir / "config" / "config.yaml").read_text()) or {}
    return {c["key_hash"]: c for c in data.get("api_keys") or [] if "key_hash" in c}


def key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def test_two_start_sh_at_once_start_one_gateway_that_stop_sh_stops(checkout: Path) -> None:
    for _round in range(3):  # without the lock the race is likely (~2 in 3), not certain: three chances
        two_starts_then_stop(checkout)


def two_starts_then_stop(checkout: Path) -> None:
    log_file = checkout / "logs" / "gateway.log"
    starts_before = log_file.read_text().count("start.sh: starting the gateway") if log_file.exists() else 0
    procs = [spawn(checkout, "./start.sh") for _ in range(2)]
    results = [finish(proc) for proc in procs]
    both = "\n".join(show(r) for r in results)
    assert all(r.returncode == 0 for r in results), both
    reported = {int(m.group(1)) for r in results for m in PID_RE.finditer(r.stdout)}
    running = gateway_pids(checkout)
    assert len(running) == 1, f"gateways running: {running}\n{both}"
    assert reported == set(running) == {pid_file_pid(checkout)}, both
    assert sum("already running" in r.stdout for r in results) == 1, both
    assert log_file.read_text().count("start.sh: starting the gateway") == starts_before + 1

    # The gateway did not inherit the lock: a writer from Python gets it at once.
    with operator_lock("test", path=checkout / "run" / "gateway.lock", timeout=10):
        pass

    stopped = run(checkout, "./stop.sh", timeout=90)
    assert stopped.returncode == 0, show(stopped)
    assert gateway_pids(checkout) == [], "stop.sh left a gateway running (orphan)"
    assert not port_open(checkout)
    assert not (checkout / "run" / "gateway.pid").exists()


def test_six_virtual_key_sh_at_once_keep_six_clients_and_keys(checkout: Path) -> None:
    start(checkout)
    before = clients_by_hash(checkout)
    procs = [spawn(checkout, "./virtual-key.sh", *(["--id", f"together-{i}"] if i % 2 else [])) for i in range(6)]
    results = [finish(proc) for proc in procs]
    both = "\n".join(show(r) for r in results)
    assert all(r.returncode == 0 for r in results), both
    keys = [k for r in results for k in KEY_RE.findall(r.stdout)]
    assert len(keys) == 6 and len(set(keys)) == 6, both
    assert all("OK: the running gateway accepts the new key" in r.stdout for r in results), both

    clients = clients_by_hash(checkout)
    assert len(clients) == len(before) + 6
    ids = [clients[key_hash(k)]["id"] for k in keys]  # KeyError: a client was lost
    assert len(set(ids)) == 6 and {f"together-{i}" for i in (1, 3, 5)} <= set(ids)
    assert env_values(checkout / ".env")["VIRTUAL_KEY"] in keys
    for key in keys:
        assert accepted(checkout, key), f"the gateway refuses key #{keys.index(key)}"


def test_python_writers_and_scripts_share_one_lock(checkout: Path, tmp_path: Path) -> None:
    config = checkout / "config" / "config.yaml"
    out = tmp_path / "virtual-key.out"
    with operator_lock("the test holding the lock", path=checkout / "run" / "gateway.lock"):
        before = config.read_bytes()
        proc = spawn(checkout, "./virtual-key.sh", "--id", "waited", out=out)
        deadline = time.monotonic() + 60
        while LOCK_WAIT_NOTE not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert LOCK_WAIT_NOTE in out.read_text() and "the test holding the lock" in out.read_text(), \
            out.read_text()
        assert proc.poll() is None and config.read_bytes() == before
    assert finish(proc).returncode == 0, out.read_text()
    assert "id: waited" in config.read_text()

    # python -m gateway add-client on its own (no script around it) waits for the lock as well
    with operator_lock("the test again", path=checkout / "run" / "gateway.lock"):
        before = config.read_bytes()
        cli = spawn(checkout, ".venv/bin/python", "-m", "gateway", "add-client", "--id", "cli-waited")
        time.sleep(5)  # long enough for add-client to have written, had it not waited
        assert cli.poll() is None and config.read_bytes() == before
    added = finish(cli, timeout=60)
    assert added.returncode == 0, show(added)
    assert clients_by_hash(checkout)[key_hash(added.stdout.strip())]["id"] == "cli-waited"


def test_recycled_pid_is_not_taken_for_the_gateway(checkout: Path) -> None:
    pid_file = checkout / "run" / "gateway.pid"
    (checkout / "logs" / "gateway.log").touch()
    tail = subprocess.Popen(["tail", "-f", "logs/gateway.log"], cwd=checkout, stdout=subprocess.DEVNULL)
    try:
        # stop.sh: a pid file naming `tail -f logs/gateway.log` (old format, and with its real start time)
        for content in (f"{tail.pid}\n", f"{tail.pid} {proc_starttime(tail.pid)}\n"):
            pid_file.write_text(content)
            stopped = run(checkout, "./stop.sh", timeout=60)
            assert stopped.returncode == 0, show(stopped)
            assert "another program" in stopped.stdout and "stopping the gateway" not in stopped.stdout, show(stopped)
            assert tail.poll() is None, "stop.sh killed `tail -f logs/gateway.log`"
            assert not pid_file.exists()

        # start.sh: the same pid file does not make it say "already running"
        pid_file.write_text(f"{tail.pid}\n")
        started = run(checkout, "./start.sh", timeout=120)
        assert started.returncode == 0 and "Gateway running at" in started.stdout, show(started)
        pid = pid_file_pid(checkout)
        assert pid != tail.pid and gateway_pids(checkout) == [pid] and tail.poll() is None

        # the gateway's own PID with another start time is not it either (a recycled PID by then)
        real = pid_file.read_text()
        assert real.split() == [str(pid), proc_starttime(pid)]
        pid_file.write_text(f"{pid} {int(proc_starttime(pid)) + 1}\n")
        stopped = run(checkout, "./stop.sh", timeout=60)
        assert stopped.returncode == 0 and "another program" in stopped.stdout, show(stopped)
        assert pid_alive(pid) and port_open(checkout)

        pid_file.write_text(real)
        stopped = run(checkout, "./stop.sh", timeout=90)
        assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout, show(stopped)
        assert gateway_pids(checkout) == [] and tail.poll() is None
    finally:
        tail.terminate()
        tail.wait(10)


def test_zero_limits_are_refused_by_script_cli_and_config(checkout: Path) -> None:
    config = checkout / "config" / "config.yaml"
    before = config.read_bytes()
    for argv in (["--rpm", "0"], ["--tpm", "0"], ["--rpm=0"], ["--tpm=000"]):
        refused = run(checkout, "./virtual-key.sh", "--id", "zero", *argv, timeout=60)
        assert refused.returncode == 1, show(refused)
        assert "must be at least 1" in refused.stderr and "leave" in refused.stderr, show(refused)
    cli = run(checkout, ".venv/bin/python", "-m", "gateway", "add-client", "--id", "zero", "--rpm", "0", timeout=60)
    assert cli.returncode != 0 and "--rpm must be at least 1" in cli.stderr, show(cli)
    assert config.read_bytes() == before

    # The config means the same: a 0 limit is an error, not "unlimited".
    data = yaml.safe_load(before)
    data["api_keys"] = [*(data.get("api_keys") or []),
                        {"id": "zero", "key": "sk-zero-limit-client-0001", "limits": {"req_per_min": 0}}]
    zero = checkout / "zero.yaml"
    zero.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = run(checkout, ".venv/bin/python", "-m", "gateway", "check-config", str(zero), timeout=60)
    assert checked.returncode != 0 and "req_per_min" in checked.stderr, show(checked)

    # 1 is a limit, written as such
    one = run(checkout, "./virtual-key.sh", "--id", "one-rpm", "--rpm", "1", "--tpm=7", timeout=60)
    assert one.returncode == 0, show(one)
    entry = clients_by_hash(checkout)[key_hash(KEY_RE.findall(one.stdout)[0])]
    assert entry["limits"] == {"req_per_min": 1, "tokens_per_min": 7}


def test_admin_flag_makes_an_admin_client(checkout: Path) -> None:
    start(checkout)
    created = run(checkout, "./virtual-key.sh", "--id", "ops", "--admin", timeout=60)
    assert created.returncode == 0, show(created)
    key = KEY_RE.findall(created.stdout)[0]
    entry = clients_by_hash(checkout)[key_hash(key)]
    assert entry["id"] == "ops" and entry["admin"] is True
    plain = run(checkout, "./virtual-key.sh", "--id", "not-ops", timeout=60)
    assert plain.returncode == 0, show(plain)
    assert "admin" not in clients_by_hash(checkout)[key_hash(KEY_RE.findall(plain.stdout)[0])]
    checked = run(checkout, ".venv/bin/python", "-m", "gateway", "check-config", timeout=60)
    assert checked.returncode == 0, show(checked)
    plain_key = KEY_RE.findall(plain.stdout)[0]
    assert accepted(checkout, key) and accepted(checkout, plain_key)
    # admin: true is honoured by the gateway: /metrics needs the master or an admin client's key
    metrics = base_url(checkout) + "/metrics"
    assert httpx.get(metrics, headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200
    assert httpx.get(metrics, headers={"Authorization": f"Bearer {plain_key}"}, timeout=10).status_code == 403
