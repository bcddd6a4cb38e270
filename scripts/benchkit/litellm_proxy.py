"""LiteLLM proxy as a second gateway to compare with (``--overhead --with-litellm``): a pinned release
installed once from PyPI into a virtualenv of its own under the user's cache (never the project's),
configured with one model pointing at the same fake upstream, no database, and started on a free
loopback port, pinned like the gateway."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit.common import (
    ANSWER_TEXT,
    CHAT_PATH,
    CLIENT_KEY,
    GATEWAY_PIN,
    HEADERS,
    MODEL,
    UPSTREAM_KEYS,
    BenchError,
    free_port,
    http_call,
    log,
    log_tail,
    request_body,
    wait_until,
)
from benchkit.system import Processes

# A pinned release, so the comparison changes only when this line does (the proxy's own overhead
# moves between releases). Its [proxy] extra must resolve from PyPI: some newer releases depend on
# companion packages that PyPI does not have.
LITELLM_VERSION = "1.106.12"
INSTALL_TIMEOUT_S = 900


def venv_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llm-gateway-bench" / "litellm-venv"


@dataclass
class LiteLLM:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    version: str


def ensure_litellm(python: str) -> tuple[Path | None, str]:
    """The ``litellm`` command of the cached virtualenv, installing ``litellm[proxy]`` there first
    when it is missing or another version; (None, why) when that fails (no network, ...)."""
    venv = venv_dir()
    marker, command = venv / ".bench-installed", venv / "bin" / "litellm"
    if command.exists() and marker.exists() and marker.read_text().strip() == LITELLM_VERSION:
        return command, ""
    log(f"installing LiteLLM proxy {LITELLM_VERSION} into {venv} (once; a few minutes, about 750 MB)")
    marker.unlink(missing_ok=True)
    if not (venv / "bin" / "python").exists():
        done = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"`python -m venv {venv}` failed: {done.stderr.strip()[-500:]}"
    why = _pip_install(venv / "bin" / "python", f"litellm[proxy]=={LITELLM_VERSION}")
    if why:
        return None, why
    if not command.exists():
        return None, f"pip installed litellm but {command} is missing"
    marker.write_text(LITELLM_VERSION + "\n")
    log("LiteLLM proxy installed")
    return command, ""


def _pip_install(venv_python: Path, requirement: str) -> str:
    """Run pip, logging its progress every few seconds; '' on success, else the reason with pip's tail."""
    argv = [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
            requirement]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    collected, last_log, deadline = 0, time.monotonic(), time.monotonic() + INSTALL_TIMEOUT_S
    for line in proc.stdout:
        line = line.rstrip()
        if line.startswith("WARNING: Location"):
            continue  # a local index that is not there: pip goes on to the next
        tail = (tail + [line])[-30:]
        collected += line.startswith("Collecting ")
        if time.monotonic() - last_log > 5 or line.startswith(("Installing collected", "Successfully", "ERROR")):
            log(f"pip: {collected} packages resolved so far; {line[:160]}")
            last_log = time.monotonic()
        if time.monotonic() > deadline:
            proc.kill()
            break
    code = proc.wait()
    if code == 0:
        return ""
    log("pip's last lines:\n" + "\n".join(tail[-12:]))
    last_error = next((ln for ln in reversed(tail) if ln.startswith("ERROR")), tail[-1] if tail else "")
    return f"pip install {requirement} failed (exit {code}; no network to PyPI?): {last_error}"


def litellm_config(fake_port: int) -> str:
    """One model, the gateway's own model name, OpenAI-compatible at the fake; the bench's client key
    as the master key (so the same request authenticates); no database."""
    return textwrap.dedent(f"""\
        model_list:
          - model_name: {MODEL}
            litellm_params:
              model: openai/{MODEL}
              api_base: http://127.0.0.1:{fake_port}/v1
              api_key: {UPSTREAM_KEYS[0]}
        general_settings:
          master_key: {CLIENT_KEY}
        """)


def litellm_env(command: Path) -> dict[str, str]:
    """This environment without anything LiteLLM or an OpenAI client would read (a database URL
    above all), and with the bundled model-cost map (no fetch from the network at start)."""
    skip = ("OPENAI_", "LITELLM_", "DATABASE_URL", "DIRECT_URL", "REDIS_", "GATEWAY_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": str(command.parent) + os.pathsep + env.get("PATH", "")})
    return env


def start_litellm(procs: Processes, command: Path, tmp: Path, fake_port: int) -> LiteLLM:
    work = tmp / "litellm"
    work.mkdir()
    config = work / "config.yaml"
    config.write_text(litellm_config(fake_port))
    port = free_port()
    log_path = work / "litellm.log"
    argv = [*GATEWAY_PIN, str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    with log_path.open("ab") as out:
        proc = procs.start("litellm", argv, forks=True, cwd=work, env=litellm_env(command), stdout=out,
                           stderr=subprocess.STDOUT)
    wait_until(lambda: http_call(port, "GET", "/health/liveliness", timeout=2)[0] == 200, "LiteLLM proxy", 180,
               proc, log_path)
    status, _, data = http_call(port, "POST", CHAT_PATH, request_body(False), HEADERS, timeout=30)
    try:
        content = json.loads(data)["choices"][0]["message"]["content"] if status == 200 else None
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if content != ANSWER_TEXT:
        raise BenchError(f"LiteLLM proxy's sanity answer: status {status}, body {data[:500]!r}{log_tail(log_path)}")
    return LiteLLM(port, proc, log_path, LITELLM_VERSION)
