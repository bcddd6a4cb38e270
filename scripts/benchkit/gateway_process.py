"""The gateway under test as a process: its config and working directory, starting it (pinned like
the run says), telling whether it died during a measurement, the error lines of its log, and one
answer of each kind checked before any load."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.common import (
    ANSWER_TEXT,
    CHAT_PATH,
    CLIENT_KEY,
    GATEWAY_ENV,
    GATEWAY_PIN,
    HEADERS,
    MASTER_KEY,
    MODEL,
    PACED_MODEL,
    REPO,
    STREAM_MODEL,
    UPSTREAM_KEYS,
    BenchError,
    free_port,
    http_call,
    log_tail,
    request_body,
    wait_until,
)
from benchkit.fakes import Fake
from benchkit.system import Processes, process_tree


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    transport: str
    idle_rss: dict[str, Any] = field(default_factory=dict)


SINK_NAME = "bench"


def sink_config(fake: Fake) -> str:
    """``--with-sink``: every access record to a webhook sink, nginx's ``/sink`` on the fake (204)."""
    return textwrap.dedent(f"""\
        observability:
          sinks:
            - {{type: webhook, name: {SINK_NAME}, url: "http://127.0.0.1:{fake.json_port}/sink", batch_size: 100,
               interval_s: 1, queue_size: 100000}}
        """)


def sink_counts(gw: Gateway) -> dict[str, float]:
    """The sink's delivered, dropped and error counts from the gateway's /metrics."""
    status, _, data = http_call(gw.port, "GET", "/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    counts = {"delivered": 0.0, "dropped": 0.0, "errors": 0.0}
    for line in data.decode().splitlines() if status == 200 else []:
        for name in counts:
            if line.startswith(f'gateway_sink_{name}_total{{sink="{SINK_NAME}"}}'):
                counts[name] = float(line.rsplit(" ", 1)[1])
    return counts


def gateway_config(port: int, fake: Fake, log_requests: bool = False, sink: bool = False) -> str:
    keys = ", ".join(f'"{k}"' for k in UPSTREAM_KEYS)
    return (sink_config(fake) if sink else "") + textwrap.dedent(f"""\
        server: {{listen: "127.0.0.1:{port}", log_requests: {str(log_requests).lower()}}}
        llm_providers:
          - id: fake
            type: openai-compatible
            base_url: http://127.0.0.1:{fake.json_port}
            api_keys: [{keys}]
            models: [{MODEL}]
          - id: fake-sse
            type: openai-compatible
            base_url: http://127.0.0.1:{fake.sse_port}
            api_keys: [{keys}]
            models: [{STREAM_MODEL}]
          - id: fake-paced
            type: openai-compatible
            base_url: http://127.0.0.1:{fake.paced_port}
            api_keys: [{keys}]
            models: [{PACED_MODEL}]
        api_keys:
          - {{id: bench, key: {CLIENT_KEY}}}
        """)


def gateway_workdir(work: Path, config: str, port: int, workers: int, python: str) -> dict[str, str]:
    """``work`` with ``config/config.yaml`` and a mode-600 ``.env`` (the master key); the environment
    a gateway serving from there runs with: nothing inherited named GATEWAY_* or OPENAI_*, then
    ``GATEWAY_ENV`` (--batch-helper-threads)."""
    (work / "config").mkdir(parents=True)
    config_path = work / "config" / "config.yaml"
    config_path.write_text(config)
    env_file = work / ".env"
    env_file.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OPENAI_"))}
    env.update({
        "GATEWAY_CONFIG": str(config_path), "GATEWAY_ENV_FILE": str(env_file), "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port), "GATEWAY_WORKERS": str(workers), "GATEWAY_DATA_DIR": str(work / "data"),
        "PYTHONPATH": str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        "PATH": str(Path(python).parent) + os.pathsep + env.get("PATH", ""),
    })
    env.update(GATEWAY_ENV)
    return env


def spawn_gateway(procs: Processes, python: str, work: Path, env: dict[str, str], port: int,
                  pinned: bool = True) -> tuple[subprocess.Popen[bytes], Path]:
    """``python -m gateway serve`` from ``work`` (on CPU 0 when ``pinned`` and the run pins), once
    it answers readiness; the process and its log."""
    log_path = work / "gateway.log"
    with log_path.open("ab") as out:
        proc = procs.start("gateway", [*(GATEWAY_PIN if pinned else []), python, "-m", "gateway", "serve"],
                           forks=True, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_until(lambda: http_call(port, "GET", "/health/readiness", timeout=1)[0] == 200, "gateway", 60, proc,
               log_path)
    return proc, log_path


def start_gateway(procs: Processes, python: str, tmp: Path, fake: Fake, workers: int,
                  transport: str | None, tag: str, log_requests: bool = False, sink: bool = False) -> Gateway:
    work = tmp / f"gateway-{tag}"
    port = free_port()
    env = gateway_workdir(work, gateway_config(port, fake, log_requests, sink), port, workers, python)
    if transport:
        env["GATEWAY_HTTP_TRANSPORT"] = transport
    proc, log_path = spawn_gateway(procs, python, work, env, port)
    # Readiness is answered by a worker; wait until the tree stops growing (all workers up).
    deadline, last = time.monotonic() + 10, -1
    while time.monotonic() < deadline:
        n = len(process_tree(proc.pid))
        if n == last and n >= (1 if workers == 1 else 1 + workers):  # one worker runs embedded
            break
        last = n
        time.sleep(0.5)
    return Gateway(port, proc, log_path, transport or "default")


def ensure_alive(gw: Gateway, when: str) -> None:
    """Raise when the gateway (Granian's main process) is gone."""
    if gw.proc.poll() is None:
        return
    hint = ""
    if gw.log_path.exists() and "Shutting down granian" in gw.log_path.read_text(errors="replace"):
        hint = ("\nIts log shows an orderly shutdown, which this script did not ask for: some other process "
                "sent it SIGTERM/SIGINT (something stopping Granian processes by name?).")
    raise BenchError(f"the gateway ({gw.transport}) exited {when}, with status {gw.proc.returncode}{hint}"
                     f"{log_tail(gw.log_path)}")


def gateway_run(gw: Gateway, when: str, fn: Any, *args: Any) -> Any:
    """Run a measurement against the gateway; if it fails, say first whether the gateway died."""
    try:
        result = fn(*args)
    except (BenchError, OSError, http.client.HTTPException):
        time.sleep(0.2)
        ensure_alive(gw, when)
        raise
    ensure_alive(gw, when)
    return result


def gateway_log_problems(gw: Gateway) -> list[str]:
    if not gw.log_path.exists():
        return []
    bad = []
    for line in gw.log_path.read_text(errors="replace").splitlines():
        low = line.lower()
        if any(w in low for w in ('"level":"error"', '"level": "error"', "traceback", " error ", "[error]",
                                  "critical", "exception")):
            bad.append(line)
    return bad


def sanity_check(fake: Fake, gw: Gateway | None, stream: bool = True) -> None:
    """One answer of each kind, direct and through the gateway, before any load."""
    checks: list[tuple[str, int, bool, str]] = [("direct", fake.json_port, False, MODEL)]
    if stream:
        checks.append(("direct stream", fake.sse_port, True, MODEL))
    if gw is not None:
        checks.append(("gateway", gw.port, False, MODEL))
        if stream:
            checks.append(("gateway stream", gw.port, True, STREAM_MODEL))
    for name, port, is_stream, model in checks:
        through = gw if gw is not None and name.startswith("gateway") else None
        try:
            status, headers, data = http_call(port, "POST", CHAT_PATH, request_body(is_stream, model), HEADERS)
        except (OSError, http.client.HTTPException) as exc:
            if through is not None:
                ensure_alive(through, "before the first request")
            tail = log_tail(through.log_path) if through is not None else ""
            raise BenchError(f"sanity check '{name}' failed: {type(exc).__name__}: {exc}{tail}") from exc
        problem = answer_problem(status, headers, data, is_stream)
        if problem:
            tail = log_tail(through.log_path) if through is not None else ""
            raise BenchError(f"sanity check '{name}' failed: {problem}\nbody: {data[:1000]!r}{tail}")


def answer_problem(status: int, headers: dict[str, str], data: bytes, stream: bool) -> str:
    """What is wrong with one answer of the fake's (direct or relayed); '' when nothing is."""
    if status != 200:
        return f"status {status}"
    if stream:
        if not headers.get("content-type", "").startswith("text/event-stream"):
            return f"content-type {headers.get('content-type')!r}"
        if b"data: [DONE]" not in data or b"upstream" not in data:
            return "SSE body lacks the content or data: [DONE]"
        return ""
    try:
        content = json.loads(data)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    return f"unexpected content {content!r}" if content != ANSWER_TEXT else ""
