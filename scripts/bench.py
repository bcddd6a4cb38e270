#!/usr/bin/env python3
"""Benchmark the gateway against a fake upstream, in one run.

What it does:
  1. starts a fake upstream (nginx with fixed answers, or tests/fake_upstream.py) and the
     gateway (``python -m gateway serve``, i.e. Granian) from a temporary directory, on free
     loopback ports; waits for readiness; checks one answer of each kind; warms up;
  2. with wrk (1 thread, --latency, a Lua script for the POST), measures requests/s and
     p50/p99 latency at each concurrency (default 1, 16, 64), non-streaming, DIRECT to the
     fake and THROUGH the gateway, interleaved per level so machine noise hits both alike;
  3. derives the added latency (gateway - direct, p50 and p99) and the throughput ratio;
  4. times streaming time-to-first-byte (request sent -> first body byte) over N sequential
     requests, direct and through the gateway alternately;
  5. reads the gateway's RSS, summed over the Granian process tree, idle and after the load;
  6. optionally (--transports aiohttp,httpx) restarts the gateway once per upstream transport
     (GATEWAY_HTTP_TRANSPORT) and measures non-streaming c=16 for each;
  7. prints a Markdown table and a PASS/FAIL line per performance target.

Exit status: 0 when the benchmark ran (whatever PASS/FAIL says), 1 on an error (a process
would not start, a sanity answer was wrong, wrong arguments...), 2 when a tool is missing and
cannot be installed, 130 on Ctrl-C. Every process it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLIENT_KEY = "sk-bench-client-0000000000"
MASTER_KEY = "sk-bench-master-0000000000000000"
UPSTREAM_KEYS = ("sk-bench-upstream-1", "sk-bench-upstream-2")
MODEL = "fake-gpt-4o"
STREAM_MODEL = "fake-gpt-4o-stream"  # served by the provider whose fake answers in SSE
CHAT_PATH = "/v1/chat/completions"
ANSWER_TEXT = "Hello from the fake upstream"

# Performance targets: (key, label, unit, limit, higher_is_better)
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_RPS = 2500.0
TARGET_ADDED_TTFB_MS = 1.0
TARGET_IDLE_RSS_MIB = 80.0
TARGET_LEVEL = 16


class BenchError(Exception):
    """Something that stops the benchmark (not a slow number: those are FAILs)."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes

class Processes:
    """Every process this run starts, each in its own session so its whole group can be stopped."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._forking: set[int] = set()  # pids of servers that have children (Granian, nginx)

    def start(self, name: str, argv: list[str], forks: bool = False, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self._procs.append((name, proc))
        if forks:
            self._forking.add(proc.pid)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the process group we created for ``proc`` (by its id), then wait; SIGKILL if it lingers.

        A leader that already exited is left alone unless it is a forking server, whose group
        (its session, which we created) lives on while its workers do.
        """
        if proc.poll() is not None and proc.pid not in self._forking:
            self._procs = [(n, p) for n, p in self._procs if p is not proc]
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
        # Children that ignored the signal (or were still shutting down) go too.
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        self._forking.discard(proc.pid)

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self._procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"could not stop pid {proc.pid}: {exc}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> dict[str, Any]:
    pids = process_tree(root)
    per = {pid: rss_kib(pid) for pid in pids}
    return {"total_mib": sum(per.values()) / 1024, "processes": len(pids),
            "per_process_mib": {str(pid): kib / 1024 for pid, kib in per.items()}}


def cpu_busy_percent(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat), to flag a machine already loaded."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds used so far by ``root`` and its descendants."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- tools

SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def which(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    for d in SBIN_DIRS:
        path = Path(d, binary)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def ensure_tools(fake: str) -> dict[str, str]:
    need = {"wrk": "wrk"}
    if fake == "nginx":
        need["nginx"] = "nginx-light"
    missing = {b: pkg for b, pkg in need.items() if which(b) is None}
    if missing:
        pkgs = sorted(set(missing.values()))
        if os.geteuid() == 0 and which("apt-get"):
            log(f"installing {' '.join(pkgs)} with apt-get")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            for argv in (["apt-get", "update", "-qq"],
                         ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs]):
                done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"scripts/bench: `{' '.join(argv)}` failed:\n{done.stderr[-2000:]}")
        else:
            hint = "sudo apt-get install -y " + " ".join(pkgs)
            if fake == "nginx" and "nginx" in missing:
                hint += "   (or use --fake python, which needs no nginx)"
            print(f"scripts/bench: missing {', '.join(sorted(missing))}; not root, so not installing it.\n"
                  f"  Install it with:  {hint}", file=sys.stderr)
            raise SystemExit(2)
    paths = {b: which(b) for b in need}
    still = [b for b, p in paths.items() if p is None]
    if still:
        print(f"scripts/bench: {', '.join(still)} still not found after installing", file=sys.stderr)
        raise SystemExit(2)
    return {b: str(p) for b, p in paths.items()}


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout.strip().splitlines() or ["?"])[0]


# --------------------------------------------------------------------------- HTTP helpers

def request_body(stream: bool, model: str = MODEL) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"}


def http_call(port: int, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def wait_until(check: Any, what: str, timeout: float, proc: subprocess.Popen[bytes] | None = None,
               logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}{_log_tail(logfile)}")
        try:
            if check():
                return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.1)
    raise BenchError(f"{what} not ready after {timeout:.0f} s (last error: {last}){_log_tail(logfile)}")


def _log_tail(path: Path | None, chars: int = 3000) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace")
    return f"\n--- {path} (tail) ---\n{text[-chars:]}" if text.strip() else ""


# --------------------------------------------------------------------------- fakes

def completion_json() -> str:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER_TEXT},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }, separators=(",", ":"))


def sse_body() -> str:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    pieces = ["Hello from", " the fake", " upstream"]
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
    out = "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)
    return out + "data: [DONE]\n\n"


def nginx_string(text: str) -> str:
    if "$" in text:
        raise ValueError("nginx return text must not contain '$' (variables)")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


@dataclass
class Fake:
    kind: str
    json_port: int  # non-streaming answers on CHAT_PATH
    sse_port: int  # streaming answers on CHAT_PATH
    proc: subprocess.Popen[bytes]
    version: str


def start_nginx(procs: Processes, nginx: str, tmp: Path) -> Fake:
    root = tmp / "nginx"
    root.mkdir()
    for attempt in range(3):
        json_port, sse_port = free_port(), free_port()
        if json_port == sse_port:
            continue
        completion, sse = nginx_string(completion_json()), nginx_string(sse_body())
        conf = textwrap.dedent(f"""\
            worker_processes 1;
            daemon off;
            master_process on;
            pid {root}/nginx.pid;
            error_log {root}/error.log warn;
            events {{ worker_connections 2048; multi_accept on; }}
            http {{
                access_log off;
                client_body_temp_path {root}/client_body;
                proxy_temp_path {root}/proxy;
                fastcgi_temp_path {root}/fastcgi;
                uwsgi_temp_path {root}/uwsgi;
                scgi_temp_path {root}/scgi;
                keepalive_requests 10000000;
                keepalive_timeout 300s;
                client_body_buffer_size 64k;
                server_tokens off;
                server {{
                    listen 127.0.0.1:{json_port} backlog=4096;
                    location = /v1/chat/completions {{ default_type application/json; return 200 {completion}; }}
                    location = /v1/stream {{ default_type text/event-stream; return 200 {sse}; }}
                    location = /health {{ default_type text/plain; return 200 'ok'; }}
                }}
                server {{
                    listen 127.0.0.1:{sse_port} backlog=4096;
                    location = /v1/chat/completions {{ default_type text/event-stream; return 200 {sse}; }}
                    location = /health {{ default_type text/plain; return 200 'ok'; }}
                }}
            }}
            """)
        conf_path = root / "nginx.conf"
        conf_path.write_text(conf)
        logf = root / "stderr.log"
        with logf.open("ab") as out:
            argv = [nginx, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf_path)]
            proc = procs.start("nginx", argv, forks=True, stdout=out, stderr=subprocess.STDOUT, cwd=root)

        def ready() -> bool:
            return all(http_call(p, "GET", "/health", timeout=1)[0] == 200 for p in (json_port, sse_port))

        try:
            wait_until(ready, "nginx", 10, proc, root / "error.log")
        except BenchError:
            procs.stop(proc)
            if attempt == 2:
                raise
            continue  # probably lost a port race; try new ports
        return Fake("nginx", json_port, sse_port, proc, tool_version([nginx, "-v"]))
    raise BenchError("could not start nginx")


def start_python_fake(procs: Processes, python: str, tmp: Path) -> Fake:
    logf = tmp / "fake_upstream.log"
    with logf.open("ab") as err:
        proc = procs.start("fake_upstream", [python, str(REPO / "tests" / "fake_upstream.py"), "--port", "0"],
                           stdout=subprocess.PIPE, stderr=err, cwd=REPO)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if proc.poll() is not None:
            raise BenchError(f"fake_upstream.py exited with {proc.returncode}{_log_tail(logf)}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                break
            line += chunk
    if not line.startswith(b"READY "):
        raise BenchError(f"fake_upstream.py did not print READY (got {line!r}){_log_tail(logf)}")
    port = int(line.split()[1])
    return Fake("python", port, port, proc, "tests/fake_upstream.py (aiohttp)")


# --------------------------------------------------------------------------- gateway

@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    transport: str
    idle_rss: dict[str, Any] = field(default_factory=dict)


def gateway_config(port: int, fake: Fake) -> str:
    keys = ", ".join(f'"{k}"' for k in UPSTREAM_KEYS)
    return textwrap.dedent(f"""\
        server: {{listen: "127.0.0.1:{port}", log_requests: false}}
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
        api_keys:
          - {{id: bench, key: {CLIENT_KEY}}}
        """)


def start_gateway(procs: Processes, python: str, tmp: Path, fake: Fake, workers: int,
                  transport: str | None, tag: str) -> Gateway:
    work = tmp / f"gateway-{tag}"
    (work / "config").mkdir(parents=True)
    port = free_port()
    config = work / "config" / "config.yaml"
    config.write_text(gateway_config(port, fake))
    env_file = work / ".env"
    env_file.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OPENAI_"))}
    env.update({
        "GATEWAY_CONFIG": str(config), "GATEWAY_ENV_FILE": str(env_file), "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port), "GATEWAY_WORKERS": str(workers), "GATEWAY_DATA_DIR": str(work / "data"),
        "PYTHONPATH": str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        "PATH": str(Path(python).parent) + os.pathsep + env.get("PATH", ""),
    })
    if transport:
        env["GATEWAY_HTTP_TRANSPORT"] = transport
    log_path = work / "gateway.log"
    with log_path.open("ab") as out:
        proc = procs.start("gateway", [python, "-m", "gateway", "serve"], forks=True, cwd=work, env=env,
                           stdout=out, stderr=subprocess.STDOUT)

    def ready() -> bool:
        return http_call(port, "GET", "/health/readiness", timeout=1)[0] == 200

    wait_until(ready, "gateway", 60, proc, log_path)
    # Readiness is answered by a worker; wait until the tree stops growing (all workers up).
    deadline, last = time.monotonic() + 10, -1
    while time.monotonic() < deadline:
        n = len(process_tree(proc.pid))
        if n == last and n >= 1 + workers:
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
                     f"{_log_tail(gw.log_path)}")


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
        try:
            status, headers, data = http_call(port, "POST", CHAT_PATH, request_body(is_stream, model), HEADERS)
        except (OSError, http.client.HTTPException) as exc:
            if gw is not None and name.startswith("gateway"):
                ensure_alive(gw, "before the first request")
            tail = _log_tail(gw.log_path) if gw is not None and name.startswith("gateway") else ""
            raise BenchError(f"sanity check '{name}' failed: {type(exc).__name__}: {exc}{tail}") from exc
        problem = ""
        if status != 200:
            problem = f"status {status}"
        elif is_stream:
            if not headers.get("content-type", "").startswith("text/event-stream"):
                problem = f"content-type {headers.get('content-type')!r}"
            elif b"data: [DONE]" not in data or b"upstream" not in data:
                problem = "SSE body lacks the content or data: [DONE]"
        else:
            try:
                content = json.loads(data)["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                content = None
            if content != ANSWER_TEXT:
                problem = f"unexpected content {content!r}"
        if problem:
            tail = _log_tail(gw.log_path) if gw is not None and name.startswith("gateway") else ""
            raise BenchError(f"sanity check '{name}' failed: {problem}\nbody: {data[:1000]!r}{tail}")


# --------------------------------------------------------------------------- wrk

LUA = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""


def lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


@dataclass
class WrkResult:
    target: str  # direct | gateway
    conns: int
    transport: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    non_2xx: int
    text: str  # wrk's own output
    server_cpu_us_per_req: float | None = None  # CPU the server's process tree spent per request

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


def run_wrk(wrk: str, lua: Path, port: int, conns: int, duration: float, target: str,
            transport: str, procs: Processes, server_pid: int | None = None) -> WrkResult:
    cpu0 = tree_cpu_s(server_pid) if server_pid else 0.0
    argv = [wrk, "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s",
            "-s", str(lua), f"http://127.0.0.1:{port}{CHAT_PATH}"]
    proc = procs.start("wrk", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=duration + 60)
    finally:
        procs.stop(proc)
    cpu = tree_cpu_s(server_pid) - cpu0 if server_pid else None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}\n{text}")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no BENCH_JSON line:\n{text}\n{err.decode(errors='replace')}")
    raw = json.loads(line[len("BENCH_JSON "):])
    non_2xx = 0
    for ln in text.splitlines():
        if ln.strip().startswith("Non-2xx or 3xx responses:"):
            non_2xx = int(ln.split(":")[1])
    duration_s = raw["duration_us"] / 1e6
    errors = {k[4:]: raw[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")}
    return WrkResult(
        target=target, conns=conns, transport=transport, requests=raw["requests"], duration_s=duration_s,
        rps=raw["requests"] / duration_s if duration_s else 0.0,
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000, mean_ms=raw["mean_us"] / 1000, max_ms=raw["max_us"] / 1000,
        errors=errors, non_2xx=non_2xx,
        text="\n".join(ln for ln in text.splitlines() if not ln.startswith("BENCH_JSON")),
        server_cpu_us_per_req=cpu * 1e6 / raw["requests"] if cpu is not None and raw["requests"] else None)


def describe(r: WrkResult) -> str:
    errs = f", errors {r.errors}" if r.error_total else ""
    cpu = f", server CPU {r.server_cpu_us_per_req:.0f} µs/req" if r.server_cpu_us_per_req is not None else ""
    return (f"{r.target:7s} c={r.conns:<3d} {r.rps:9.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
            f"p99 {r.p99_ms:6.2f} ms  ({r.requests} requests{cpu}{errs})")


# --------------------------------------------------------------------------- TTFB

class StreamTimer:
    """Keep-alive HTTP/1.1 connection timing one streaming request at a time."""

    def __init__(self, port: int, model: str):
        self.port = port
        self.body = request_body(True, model)
        self.conn: http.client.HTTPConnection | None = None

    def once(self) -> float:
        """Seconds from sending the request to receiving the first body byte."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.conn
        t0 = time.perf_counter()
        conn.request("POST", CHAT_PATH, body=self.body, headers=HEADERS)
        resp = conn.getresponse()
        first = resp.read(1)  # chunked: the first payload byte, not the chunk-size line
        t1 = time.perf_counter()
        rest = resp.read()
        if resp.status != 200 or not first or b"[DONE]" not in first + rest:
            raise BenchError(f"streaming request to port {self.port} answered {resp.status}: {(first + rest)[:500]!r}")
        if resp.will_close:
            self.close()
        return t1 - t0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def measure_ttfb(fake: Fake, gw: Gateway, n: int, warmup: int = 20) -> dict[str, Any]:
    direct, through = StreamTimer(fake.sse_port, MODEL), StreamTimer(gw.port, STREAM_MODEL)
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    try:
        for _ in range(warmup):
            direct.once()
            through.once()
        for _ in range(n):  # alternate so noise hits both alike
            samples["direct"].append(direct.once() * 1000)
            samples["gateway"].append(through.once() * 1000)
    finally:
        direct.close()
        through.close()
    out: dict[str, Any] = {"requests": n}
    for k, v in samples.items():
        out[k] = {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "mean_ms": sum(v) / len(v),
                  "min_ms": min(v), "max_ms": max(v), "samples_ms": [round(x, 4) for x in v]}
    out["added_p50_ms"] = out["gateway"]["p50_ms"] - out["direct"]["p50_ms"]
    out["added_p99_ms"] = out["gateway"]["p99_ms"] - out["direct"]["p99_ms"]
    return out


# --------------------------------------------------------------------------- report

def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float, signed: bool = False) -> str:
    return f"{x:+.2f} ms" if signed else f"{x:.2f} ms"


def fmt_ratio(a: float, b: float) -> str:
    if not b:
        return "n/a"
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.3f}"


def fmt_cpu(r: WrkResult) -> str:
    return f"{r.server_cpu_us_per_req:,.0f} µs" if r.server_cpu_us_per_req is not None else "n/a"


def pair_rows(results: list[WrkResult]) -> list[tuple[WrkResult, WrkResult]]:
    pairs = []
    for r in results:
        if r.target == "gateway":
            d = next(x for x in results if x.target == "direct" and x.conns == r.conns and x.transport == r.transport)
            pairs.append((d, r))
    return pairs


def render(args: argparse.Namespace, meta: dict[str, Any], main: list[WrkResult], ttfb: dict[str, Any],
           rss: dict[str, Any], transports: list[dict[str, Any]], checks: list[dict[str, Any]],
           problems: list[str]) -> str:
    lines = ["## Benchmark", ""]
    lines.append(
        f"{meta['date']}, commit `{meta['commit']}`, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"Granian {meta['granian']}, {args.workers} gateway worker(s), upstream transport: {meta['main_transport']}. "
        f"Fake upstream: {meta['fake']}. wrk: 1 thread, {args.duration:g} s per run, "
        f"direct and gateway runs interleaved per concurrency level. "
        f"CPU busy before the run: {meta['cpu_busy_before_run_percent']:.0f}%.")
    lines += ["", "Non-streaming chat completions:", "",
              "| Concurrency | Direct req/s | Gateway req/s | Gateway / direct | Direct p50 | Gateway p50 "
              "| Added p50 | Direct p99 | Gateway p99 | Added p99 | Gateway CPU / request | Gateway errors |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d, g in pair_rows(main):
        lines.append(
            f"| {g.conns} | {fmt_int(d.rps)} | {fmt_int(g.rps)} | {fmt_ratio(g.rps, d.rps)} | {fmt_ms(d.p50_ms)} "
            f"| {fmt_ms(g.p50_ms)} | {fmt_ms(g.p50_ms - d.p50_ms, True)} | {fmt_ms(d.p99_ms)} | {fmt_ms(g.p99_ms)} "
            f"| {fmt_ms(g.p99_ms - d.p99_ms, True)} | {fmt_cpu(g)} | {g.error_total} |")
    lines += ["", f"Streaming time to first byte ({ttfb['requests']} sequential requests each, "
                  "direct and gateway alternating, keep-alive):", "",
              "| | TTFB p50 | TTFB p99 |", "|---|---:|---:|",
              f"| Direct | {fmt_ms(ttfb['direct']['p50_ms'])} | {fmt_ms(ttfb['direct']['p99_ms'])} |",
              f"| Gateway | {fmt_ms(ttfb['gateway']['p50_ms'])} | {fmt_ms(ttfb['gateway']['p99_ms'])} |",
              f"| Added | {fmt_ms(ttfb['added_p50_ms'], True)} | {fmt_ms(ttfb['added_p99_ms'], True)} |"]
    def split(snapshot: dict[str, Any]) -> str:
        parts = list(snapshot["per_process_mib"].values())
        if len(parts) < 2:
            return ""
        return f" (main {parts[0]:.1f} + worker{'s' if len(parts) > 2 else ''} " \
               + " + ".join(f"{x:.1f}" for x in parts[1:]) + ")"

    lines += ["", f"Gateway memory (RSS summed over the Granian process tree, {rss['idle']['processes']} processes): "
                  f"idle {rss['idle']['total_mib']:.1f} MiB{split(rss['idle'])}, "
                  f"after the load {rss['after_load']['total_mib']:.1f} MiB{split(rss['after_load'])}."]
    if transports:
        lines += ["", f"Upstream HTTP transport (GATEWAY_HTTP_TRANSPORT), non-streaming, c={TARGET_LEVEL}, "
                      "gateway restarted per transport:", "",
                  "| Transport | Direct req/s | Gateway req/s | Gateway / direct | Gateway p50 | Added p50 "
                  "| Gateway p99 | Added p99 | Gateway CPU / request | Idle RSS | Gateway errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t in transports:
            d, g = t["direct"], t["gateway"]
            lines.append(
                f"| {t['transport']} | {fmt_int(d.rps)} | {fmt_int(g.rps)} | {fmt_ratio(g.rps, d.rps)} "
                f"| {fmt_ms(g.p50_ms)} | {fmt_ms(g.p50_ms - d.p50_ms, True)} | {fmt_ms(g.p99_ms)} "
                f"| {fmt_ms(g.p99_ms - d.p99_ms, True)} | {fmt_cpu(g)} | {t['idle_rss_mib']:.1f} MiB "
                f"| {g.error_total} |")
    lines += ["", "Targets:", ""]
    for c in checks:
        lines.append(f"- {c['result']}: {c['label']} — {c['detail']}")
    if problems:
        lines += ["", "Problems seen:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines)


def evaluate(main: list[WrkResult], ttfb: dict[str, Any], rss: dict[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def add(key: str, label: str, value: float | None, limit: float, unit: str, higher: bool, note: str = "") -> None:
        if value is None:
            checks.append({"key": key, "label": label, "value": None, "limit": limit, "result": "N/A",
                           "detail": note or "not measured"})
            return
        ok = value >= limit if higher else value <= limit
        digits = {"req/s": ",.0f", "ms": ".2f"}.get(unit, ".1f")
        shown = f"{value:{digits}} {unit}"
        checks.append({"key": key, "label": label, "value": value, "limit": limit,
                       "result": "PASS" if ok else "FAIL", "detail": shown + (f" ({note})" if note else "")})

    pairs = {g.conns: (d, g) for d, g in pair_rows(main)}
    at = pairs.get(TARGET_LEVEL)
    add("added_p50_c16", f"added p50 at c={TARGET_LEVEL} ≤ {TARGET_ADDED_P50_MS:g} ms",
        at[1].p50_ms - at[0].p50_ms if at else None, TARGET_ADDED_P50_MS, "ms", False,
        "" if at else f"c={TARGET_LEVEL} not in --concurrency")
    add("added_p99_c16", f"added p99 at c={TARGET_LEVEL} ≤ {TARGET_ADDED_P99_MS:g} ms",
        at[1].p99_ms - at[0].p99_ms if at else None, TARGET_ADDED_P99_MS, "ms", False,
        "" if at else f"c={TARGET_LEVEL} not in --concurrency")
    best = max((g for _d, g in pairs.values()), key=lambda g: g.rps, default=None)
    add("gateway_rps", f"gateway throughput ≥ {TARGET_RPS:,.0f} req/s (best level)",
        best.rps if best else None, TARGET_RPS, "req/s", True, f"at c={best.conns}" if best else "")
    add("added_ttfb_p50", f"added streaming TTFB (p50) ≤ {TARGET_ADDED_TTFB_MS:g} ms",
        ttfb["added_p50_ms"], TARGET_ADDED_TTFB_MS, "ms", False)
    add("idle_rss", f"gateway idle RSS ≤ {TARGET_IDLE_RSS_MIB:g} MiB", rss["idle"]["total_mib"],
        TARGET_IDLE_RSS_MIB, "MiB", False, f"{rss['idle']['processes']} processes")
    return checks


def wrk_problems(results: list[WrkResult]) -> list[str]:
    out = []
    for r in results:
        if r.error_total or r.non_2xx:
            out.append(f"wrk {r.target} c={r.conns} transport={r.transport}: errors {r.errors}, "
                       f"non-2xx/3xx responses {r.non_2xx} of {r.requests} requests")
    return out


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if done.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up per target (default 2)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated wrk connection counts (default 1,16,64)")
    p.add_argument("--ttfb-requests", type=int, default=200,
                   help="sequential streaming requests per target (default 200)")
    p.add_argument("--fake", choices=("nginx", "python"), default="nginx",
                   help="fake upstream: nginx with fixed answers (default, fast) or tests/fake_upstream.py")
    p.add_argument("--transports", default="",
                   help="e.g. aiohttp,httpx: also measure non-streaming c=16 per upstream transport, "
                        "restarting the gateway for each")
    p.add_argument("--workers", type=int, default=1, help="gateway (Granian) workers (default 1)")
    p.add_argument("--json", type=Path, help="also write the raw numbers to this JSON file")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    args = p.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error("--concurrency takes integers, e.g. 1,16,64")
    if not args.levels or min(args.levels) < 1:
        p.error("--concurrency needs at least one level >= 1")
    args.transport_list = [t.strip() for t in args.transports.split(",") if t.strip()]
    bad = [t for t in args.transport_list if t not in ("lean", "aiohttp", "httpx")]
    if bad:
        p.error(f"unknown transport(s) {bad}; known: lean, aiohttp, httpx")
    if args.duration < 1 or args.warmup < 0 or args.ttfb_requests < 1 or args.workers < 1:
        p.error("--duration >= 1, --warmup >= 0, --ttfb-requests >= 1 and --workers >= 1")
    return args


def write_lua(tmp: Path, name: str, body: bytes) -> Path:
    path = tmp / f"{name}.lua"
    path.write_text(LUA.format(body=lua_string(body.decode()), key=CLIENT_KEY))
    return path


def run(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    tools = ensure_tools(args.fake)
    python = sys.executable
    wrk = tools["wrk"]
    lua = write_lua(tmp, "chat", request_body(False))
    started = time.monotonic()
    busy_before = cpu_busy_percent()
    if busy_before > 20:
        log(f"warning: the machine is already {busy_before:.0f}% busy before the run; the numbers will be noisy")

    log(f"starting the fake upstream ({args.fake})")
    fake = start_nginx(procs, tools["nginx"], tmp) if args.fake == "nginx" else start_python_fake(procs, python, tmp)
    sanity_check(fake, None)

    def warm(port: int, target: str, transport: str) -> None:
        if args.warmup > 0:
            run_wrk(wrk, lua, port, max(args.levels), args.warmup, target, transport, procs)

    # ---- main phase: the default transport
    log(f"starting the gateway ({args.workers} worker(s), default transport)")
    gw = start_gateway(procs, python, tmp, fake, args.workers, None, "main")
    time.sleep(1.0)  # let startup settle before reading idle memory
    ensure_alive(gw, "right after startup")
    rss: dict[str, Any] = {"idle": tree_rss(gw.proc.pid)}
    log(f"gateway idle RSS {rss['idle']['total_mib']:.1f} MiB over {rss['idle']['processes']} processes")
    sanity_check(fake, gw)
    log("warming up")
    warm(fake.json_port, "direct", "default")
    gateway_run(gw, "during the warm-up", warm, gw.port, "gateway", "default")

    main: list[WrkResult] = []
    for c in args.levels:
        for target, port in (("direct", fake.json_port), ("gateway", gw.port)):
            server = gw.proc.pid if target == "gateway" else fake.proc.pid
            r = gateway_run(gw, f"during the c={c} {target} run", run_wrk, wrk, lua, port, c, args.duration,
                            target, "default", procs, server)
            main.append(r)
            log(describe(r))

    log(f"streaming TTFB: {args.ttfb_requests} requests each, direct and gateway alternating")
    ttfb = gateway_run(gw, "during the TTFB measurement", measure_ttfb, fake, gw, args.ttfb_requests)
    log(f"TTFB p50 direct {ttfb['direct']['p50_ms']:.3f} ms, gateway {ttfb['gateway']['p50_ms']:.3f} ms")
    rss["after_load"] = tree_rss(gw.proc.pid)
    log(f"gateway RSS after the load {rss['after_load']['total_mib']:.1f} MiB")
    problems = wrk_problems(main)
    if gw.proc.poll() is not None:
        problems.append(f"the gateway exited during the run with status {gw.proc.returncode}")
    log_lines = gateway_log_problems(gw)
    if log_lines:
        problems.append(f"gateway log ({gw.transport}) has {len(log_lines)} error line(s), first: {log_lines[0][:300]}")
    procs.stop(gw.proc)

    # ---- per-transport comparison
    transports: list[dict[str, Any]] = []
    for t in args.transport_list:
        log(f"transport {t}: restarting the gateway with GATEWAY_HTTP_TRANSPORT={t}")
        tgw = start_gateway(procs, python, tmp, fake, args.workers, t, f"transport-{t}")
        time.sleep(1.0)
        ensure_alive(tgw, "right after startup")
        idle = tree_rss(tgw.proc.pid)
        sanity_check(fake, tgw)
        warm(fake.json_port, "direct", t)
        gateway_run(tgw, "during the warm-up", warm, tgw.port, "gateway", t)
        d = gateway_run(tgw, f"during the c={TARGET_LEVEL} direct run", run_wrk, wrk, lua, fake.json_port,
                        TARGET_LEVEL, args.duration, "direct", t, procs, fake.proc.pid)
        log(describe(d))
        g = gateway_run(tgw, f"during the c={TARGET_LEVEL} gateway run", run_wrk, wrk, lua, tgw.port,
                        TARGET_LEVEL, args.duration, "gateway", t, procs, tgw.proc.pid)
        log(f"{describe(g)}  [transport {t}]")
        transports.append({"transport": t, "direct": d, "gateway": g, "idle_rss_mib": idle["total_mib"],
                           "after_load_rss_mib": tree_rss(tgw.proc.pid)["total_mib"]})
        problems += wrk_problems([d, g])
        if tgw.proc.poll() is not None:
            problems.append(f"the gateway ({t}) exited during the run with status {tgw.proc.returncode}")
        log_lines = gateway_log_problems(tgw)
        if log_lines:
            problems.append(f"gateway log ({t}) has {len(log_lines)} error line(s), first: {log_lines[0][:300]}")
        procs.stop(tgw.proc)

    procs.stop(fake.proc)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "granian": _module_version("granian"), "wrk": tool_version([wrk, "-v"]),
        "fake": f"{fake.version}, 1 worker" if fake.kind == "nginx" else fake.version,
        "main_transport": "the gateway's default (GATEWAY_HTTP_TRANSPORT unset)",
        "cpu_busy_before_run_percent": round(busy_before, 1),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    checks = evaluate(main, ttfb, rss)
    report = render(args, meta, main, ttfb, rss, transports, checks, problems)
    print(report, flush=True)

    if args.json:
        def res(r: WrkResult) -> dict[str, Any]:
            return {k: v for k, v in r.__dict__.items()}
        data = {
            "meta": meta, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "targets": {"added_p50_ms_c16": TARGET_ADDED_P50_MS, "added_p99_ms_c16": TARGET_ADDED_P99_MS,
                        "gateway_rps": TARGET_RPS, "added_ttfb_ms": TARGET_ADDED_TTFB_MS,
                        "idle_rss_mib": TARGET_IDLE_RSS_MIB},
            "non_streaming": [
                {"concurrency": g.conns, "direct": res(d), "gateway": res(g),
                 "added_p50_ms": g.p50_ms - d.p50_ms, "added_p99_ms": g.p99_ms - d.p99_ms,
                 "rps_ratio": g.rps / d.rps if d.rps else None} for d, g in pair_rows(main)],
            "ttfb": ttfb, "rss": rss,
            "transports": [
                {"transport": t["transport"], "direct": res(t["direct"]), "gateway": res(t["gateway"]),
                 "added_p50_ms": t["gateway"].p50_ms - t["direct"].p50_ms,
                 "added_p99_ms": t["gateway"].p99_ms - t["direct"].p99_ms,
                 "rps_ratio": t["gateway"].rps / t["direct"].rps if t["direct"].rps else None,
                 "idle_rss_mib": t["idle_rss_mib"], "after_load_rss_mib": t["after_load_rss_mib"]}
                for t in transports],
            "checks": checks, "problems": problems,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


def _module_version(module: str) -> str:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:  # noqa: BLE001
        return "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("scripts/bench: Linux only (reads /proc)", file=sys.stderr)
        return 2

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    keep = args.keep_tmp
    try:
        return run(args, procs, tmp)
    except BenchError as exc:
        keep = True
        print(f"scripts/bench: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, http.client.HTTPException) as exc:
        keep = True
        print(f"scripts/bench: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scripts/bench: interrupted", file=sys.stderr)
        return 130
    finally:
        # Ctrl-C again while stopping must not leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.stop_all()
        if keep:
            print(f"scripts/bench: configs and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
