"""Closed-loop load with wrk (one thread, --latency): its Lua script, one run with the server's CPU
per request read from /proc around it, and its result parsed from the line the script prints."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchkit.common import CHAT_PATH, CLIENT_KEY, BenchError
from benchkit.system import Processes, tree_cpu_s

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


def write_lua(tmp: Path, name: str, body: bytes, url_path: str | None = None,
              key_header: str = "Authorization") -> Path:
    """The script posting ``body`` (to ``url_path`` instead of the chat path, when given), the client
    key in ``key_header`` (a bearer token in Authorization, else the key itself)."""
    path = tmp / f"{name}.lua"
    script = LUA.format(body=lua_string(body.decode()), key=CLIENT_KEY)
    if key_header.lower() != "authorization":
        script = script.replace(f'wrk.headers["Authorization"] = "Bearer {CLIENT_KEY}"',
                                f'wrk.headers["{key_header}"] = "{CLIENT_KEY}"')
    path.write_text(script if url_path is None else f"wrk.path = {lua_string(url_path)}\n" + script)
    return path


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
    return parse_wrk(json.loads(line[len("BENCH_JSON "):]), text, target, conns, transport, cpu)


def parse_wrk(raw: dict[str, float], text: str, target: str, conns: int, transport: str,
              cpu: float | None) -> WrkResult:
    """The numbers of the script's BENCH_JSON line (``raw``) and of wrk's own output (``text``)."""
    non_2xx = 0
    for ln in text.splitlines():
        if ln.strip().startswith("Non-2xx or 3xx responses:"):
            non_2xx = int(ln.split(":")[1])
    requests = int(raw["requests"])
    duration_s = raw["duration_us"] / 1e6
    errors = {k[4:]: int(raw[k]) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")}
    return WrkResult(
        target=target, conns=conns, transport=transport, requests=requests, duration_s=duration_s,
        rps=requests / duration_s if duration_s else 0.0,
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000, mean_ms=raw["mean_us"] / 1000, max_ms=raw["max_us"] / 1000,
        errors=errors, non_2xx=non_2xx,
        text="\n".join(ln for ln in text.splitlines() if not ln.startswith("BENCH_JSON")),
        server_cpu_us_per_req=cpu * 1e6 / requests if cpu is not None and requests else None)


def describe(r: WrkResult) -> str:
    errs = f", errors {r.errors}" if r.error_total else ""
    cpu = f", server CPU {r.server_cpu_us_per_req:.0f} µs/req" if r.server_cpu_us_per_req is not None else ""
    return (f"{r.target:7s} c={r.conns:<3d} {r.rps:9.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
            f"p99 {r.p99_ms:6.2f} ms  ({r.requests} requests{cpu}{errs})")


def wrk_problems(results: list[WrkResult]) -> list[str]:
    out = []
    for r in results:
        if r.error_total or r.non_2xx:
            out.append(f"wrk {r.target} c={r.conns} transport={r.transport}: errors {r.errors}, "
                       f"non-2xx/3xx responses {r.non_2xx} of {r.requests} requests")
    return out
