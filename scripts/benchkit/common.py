"""What every measurement shares: the names and keys of the run, the error that stops it, the log
line, the request bodies, a one-shot HTTP call, waiting for a server, and a percentile."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

PACKAGE_DIR = Path(__file__).resolve().parent  # ``python scripts/benchkit`` runs the package
REPO = PACKAGE_DIR.parent.parent
CLIENT_KEY = "sk-bench-client-0000000000"
MASTER_KEY = "sk-bench-master-0000000000000000"
UPSTREAM_KEYS = ("sk-bench-upstream-1", "sk-bench-upstream-2")
MODEL = "fake-gpt-4o"
STREAM_MODEL = "fake-gpt-4o-stream"  # served by the provider whose fake answers in SSE
PACED_MODEL = "fake-gpt-4o-paced"  # served by the paced SSE fake: EVENTS events INTERVAL apart
CHAT_PATH = "/v1/chat/completions"
ANSWER_TEXT = "Hello from the fake upstream"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {CLIENT_KEY}"}

GATEWAY_ENV: dict[str, str] = {}  # set for every gateway this run starts (--batch-helper-threads)
GATEWAY_PIN: list[str] = []  # "taskset -c 0" when the machine has two cores or more (set by pin_cpus)
T = TypeVar("T")


class BenchError(Exception):
    """Something that stops the benchmark (not a slow number: those are FAILs)."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def request_body(stream: bool, model: str = MODEL) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def raw_request(port: int, body: bytes) -> bytes:
    """The bytes of one chat-completion POST to ``port`` (for the clients that write sockets)."""
    return (f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


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


def wait_until(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen[bytes] | None = None,
               logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}{log_tail(logfile)}")
        try:
            if check():
                return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.1)
    raise BenchError(f"{what} not ready after {timeout:.0f} s (last error: {last}){log_tail(logfile)}")


def log_tail(path: Path | None, chars: int = 3000) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace")
    return f"\n--- {path} (tail) ---\n{text[-chars:]}" if text.strip() else ""


def all_healthy(*ports: int) -> bool:
    return all(http_call(p, "GET", "/health", timeout=1)[0] == 200 for p in ports)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed (it is a gateway dependency), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
