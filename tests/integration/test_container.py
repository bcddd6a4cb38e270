"""Container packaging checks.

* ``test_lint_container_script``: runs ``scripts/lint_container.sh`` (hadolint on
  the Dockerfile, ``docker-compose config -q`` on compose/compose.yaml). Skips
  when the script reports that a tool could not be installed (exit 77).
* ``test_podman_build_and_health``: builds the image with podman, runs it and
  polls ``/health/liveliness``, runs the image HEALTHCHECK, checks the
  non-root user and a graceful SIGTERM stop. Skips quickly (with the reason)
  when podman is not on PATH, when the application sources are not present, or
  when the base image is neither local nor pullable within 60 s (as on
  machines without access to a container registry).

Environment knobs:
  GATEWAY_TEST_BASE_IMAGE   base image for the build (default
                            docker.io/library/python:3.11-slim), passed as the
                            PYTHON_IMAGE build argument.
  GATEWAY_TEST_OCI_RUNTIME  podman --runtime value (default: "runc" if runc is
                            on PATH, otherwise podman's default).
  GATEWAY_TEST_BUILD_CONTEXT  build context (default: the repository root).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_SCRIPT = REPO_ROOT / "scripts" / "lint_container.sh"
DEFAULT_BASE_IMAGE = "docker.io/library/python:3.11-slim"
CONTAINER_PORT = 2906

LINT_TIMEOUT = 150  # may pip-install hadolint and apt-get install docker-compose
PULL_TIMEOUT = 60
BUILD_TIMEOUT = 1200  # only reached when a base image is actually available
HEALTH_TIMEOUT = 120
STOP_GRACE = 25


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


def _podman(
    *args: str, timeout: float, check: bool = False
) -> subprocess.CompletedProcess[str]:
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


def _runtime_args() -> list[str]:
    """Runtime flags that also work in constrained sandboxes.

    * runc rather than crun: crun refuses cgroup v1/v2 hybrid hosts.
    * explicit, modest ulimits: podman's defaults (nofile 1048576, nproc from
      the host) cannot be applied without CAP_SYS_RESOURCE in some VMs.
    """
    args: list[str] = []
    runtime = os.environ.get("GATEWAY_TEST_OCI_RUNTIME") or (
        "runc" if shutil.which("runc") else ""
    )
    if runtime:
        args += ["--runtime", runtime]
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 65536 if nofile_hard == resource.RLIM_INFINITY else min(nofile_hard, 65536)
    args += ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]
    return args


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_example_config(context: Path) -> Path | None:
    for rel in (
        "config/config.example.yaml",
        "config/config.yaml.example",
        "config/example.yaml",
        "config.example.yaml",
        "examples/config.yaml",
    ):
        candidate = context / rel
        if candidate.is_file():
            return candidate
    return None


def _ensure_base_image(image: str) -> None:
    """Skip (quickly) unless the base image is local or can be pulled in time."""
    try:
        exists = _podman("image", "exists", image, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip("podman did not answer `podman image exists` within 30 s")
    if exists.returncode == 0:
        return
    try:
        pulled = _podman("pull", "--quiet", image, timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.skip(
            f"cannot pull base image {image}: `podman pull` timed out after {PULL_TIMEOUT} s"
        )
    if pulled.returncode != 0:
        error = _tail(pulled.stderr or pulled.stdout, 3).replace("\n", " ")
        pytest.skip(
            f"cannot pull base image {image} (no container registry reachable?): {error} "
            "[set GATEWAY_TEST_BASE_IMAGE to a local Python 3.11 image to build anyway]"
        )


def test_podman_build_and_health() -> None:
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not on PATH (install it with `apt-get install podman` to run this test)"
        )

    context = Path(os.environ.get("GATEWAY_TEST_BUILD_CONTEXT") or REPO_ROOT).resolve()
    missing = [
        name
        for name in (
            "Dockerfile",
            "pyproject.toml",
            "README.md",
            "requirements.lock",
            "gateway/__init__.py",
        )
        if not (context / name).is_file()
    ]
    if missing:
        pytest.skip(
            f"cannot build the image: missing {', '.join(missing)} in {context}"
        )

    base_image = os.environ.get("GATEWAY_TEST_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    _ensure_base_image(base_image)

    suffix = uuid.uuid4().hex[:10]
    image = f"localhost/llm-gateway:test-{suffix}"
    container = f"llm-gateway-test-{suffix}"
    runtime_args = _runtime_args()

    config_dir = Path(tempfile.mkdtemp(prefix="gw-container-config-"))
    try:
        build = _podman(
            "build",
            "--format",
            "docker",  # OCI format would drop HEALTHCHECK
            *runtime_args,
            "--build-arg",
            f"PYTHON_IMAGE={base_image}",
            "-t",
            image,
            "-f",
            str(context / "Dockerfile"),
            str(context),
            timeout=BUILD_TIMEOUT,
        )
        assert build.returncode == 0, (
            f"podman build failed:\n{_tail(build.stdout + build.stderr, 80)}"
        )

        inspect = json.loads(
            _podman("image", "inspect", image, timeout=30, check=True).stdout
        )[0]
        cfg = inspect.get("Config", {})
        assert cfg.get("User") not in (None, "", "0", "root", "0:0"), (
            f"image runs as root: {cfg.get('User')!r}"
        )
        assert cfg.get("StopSignal") == "SIGTERM"
        assert f"{CONTAINER_PORT}/tcp" in (cfg.get("ExposedPorts") or {})
        assert {"/app/config", "/app/data"} <= set(cfg.get("Volumes") or {})
        healthcheck = inspect.get("Healthcheck") or cfg.get("Healthcheck") or {}
        assert healthcheck.get("Test"), (
            "image has no HEALTHCHECK (built in OCI format?)"
        )

        # Config directory readable by the unprivileged container user.
        config_dir.chmod(0o755)
        example = _find_example_config(context)
        if example is not None:
            target = config_dir / "config.yaml"
            shutil.copyfile(example, target)
            target.chmod(0o644)

        host_port = _free_port()
        _podman(
            "run",
            "-d",
            "--name",
            container,
            *runtime_args,
            "-p",
            f"127.0.0.1:{host_port}:{CONTAINER_PORT}",
            "-v",
            f"{config_dir}:/app/config:ro",
            "-e",
            f"GATEWAY_MASTER_KEY=sk-test-{uuid.uuid4().hex}",
            image,
            timeout=60,
            check=True,
        )

        url = f"http://127.0.0.1:{host_port}/health/liveliness"
        deadline = time.monotonic() + HEALTH_TIMEOUT
        last_error = "no attempt"
        healthy = False
        while time.monotonic() < deadline:
            state = _podman(
                "inspect", "--format", "{{.State.Running}}", container, timeout=30
            )
            if state.stdout.strip() != "true":
                logs = _podman("logs", container, timeout=30)
                pytest.fail(
                    f"container exited before becoming healthy:\n{_tail(logs.stdout + logs.stderr, 60)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=3) as resp:
                    if resp.status == 200:
                        json.loads(resp.read() or b"{}")
                        healthy = True
                        break
                    last_error = f"HTTP {resp.status}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = repr(exc)
            time.sleep(1)
        if not healthy:
            logs = _podman("logs", container, timeout=30)
            pytest.fail(
                f"{url} not healthy within {HEALTH_TIMEOUT}s (last error: {last_error}):\n"
                f"{_tail(logs.stdout + logs.stderr, 60)}"
            )

        # The image's own HEALTHCHECK command must pass too.
        hc = _podman("healthcheck", "run", container, timeout=60)
        assert hc.returncode == 0, f"HEALTHCHECK failed: {_tail(hc.stdout + hc.stderr)}"

        uid = _podman(
            "exec",
            container,
            "python",
            "-c",
            "import os; print(os.getuid())",
            timeout=60,
            check=True,
        )
        assert uid.stdout.strip() not in ("", "0"), (
            "gateway runs as root inside the container"
        )

        # Graceful stop: SIGTERM reaches Granian (PID 1 via exec) and it exits
        # well before podman would escalate to SIGKILL.
        started = time.monotonic()
        _podman(
            "stop",
            "-t",
            str(STOP_GRACE),
            container,
            timeout=STOP_GRACE + 30,
            check=True,
        )
        elapsed = time.monotonic() - started
        exit_code = _podman(
            "inspect", "--format", "{{.State.ExitCode}}", container, timeout=30
        ).stdout.strip()
        assert elapsed < STOP_GRACE - 5, (
            f"stop took {elapsed:.1f}s: SIGTERM not handled promptly"
        )
        assert exit_code != "137", (
            "container was killed (SIGKILL) instead of stopping on SIGTERM"
        )
    finally:
        for cleanup in (("rm", "-f", "-v", container), ("rmi", "-f", image)):
            try:
                _podman(*cleanup, timeout=60)
            except (subprocess.TimeoutExpired, OSError):
                pass
        shutil.rmtree(config_dir, ignore_errors=True)
