"""``--mcp``: an MCP ``tools/call`` through the gateway's ``/mcp`` against the same call made direct
to the same MCP server, in interleaved rounds as ``--overhead`` makes them (one keep-alive
connection per target, sequential calls, the order reversed every other round). The server is the
official SDK's ``MCPServer`` (``tests/mcp_upstream.py``, JSON answers, on uvicorn); both targets
are called in the 2026-07-28 revision; the gateway is pinned like every gateway of the run. The
product's target: the gateway adds under 1 ms at p50 (the median of the per-round differences)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from benchkit.common import CLIENT_KEY, GATEWAY_PIN, REPO, BenchError, free_port, http_call, log, wait_until
from benchkit.gateway_process import (
    Gateway,
    ensure_alive,
    gateway_log_problems,
    gateway_run,
    gateway_workdir,
    spawn_gateway,
)
from benchkit.overhead import SequentialClient, interleaved_rounds, overhead_table, summarize
from benchkit.system import Processes, cpu_busy_percent, tree_cpu_s
from benchkit.tools import git_commit

MCP_ADDED_P50_MS = 1.0
UPSTREAM = REPO / "tests" / "mcp_upstream.py"
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def call_request(port: int, path: str, tool: str) -> bytes:
    """The bytes of one 2026-07-28 ``tools/call`` of ``tool`` (``add`` 2 + 3) POSTed to ``path``."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": {"a": 2, "b": 3}, "_meta": META}},
                      separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {tool}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def start_upstream(procs: Processes, tmp: Path) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    log_path = tmp / "mcp-upstream.log"
    with log_path.open("ab") as out:
        proc = procs.start("mcp upstream", [sys.executable, str(UPSTREAM), "http", "--port", str(port), "--json"],
                           cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    status = lambda: _answer(port, "/mcp", "add")[0] == 200  # noqa: E731
    wait_until(status, "the MCP upstream (is the mcp package installed? ./setup.sh --dev)", 30, proc, log_path)
    return port, proc


def _answer(port: int, path: str, tool: str) -> tuple[int, bytes]:
    raw = call_request(port, path, tool)
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    headers.pop("Content-Length")
    status, _, data = http_call(port, "POST", path, body, headers)
    return status, data


def gateway_config(port: int, upstream_port: int) -> str:
    return textwrap.dedent(f"""\
        server: {{listen: "127.0.0.1:{port}", log_requests: false}}
        mcp_servers:
          - {{id: demo, url: "http://127.0.0.1:{upstream_port}/mcp"}}
        api_keys:
          - {{id: bench, key: {CLIENT_KEY}, mcp: {{servers: ["*"]}}}}
        """)


def run_mcp(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    busy = cpu_busy_percent()
    if busy > 20:
        log(f"warning: the machine is already {busy:.0f}% busy before the run; the numbers will be noisy")
    upstream_port, _ = start_upstream(procs, tmp)
    port = free_port()
    env = gateway_workdir(tmp / "gateway-mcp", gateway_config(port, upstream_port), port, args.workers, sys.executable)
    proc, log_path = spawn_gateway(procs, sys.executable, tmp / "gateway-mcp", env, port)
    for name, target, path, tool in (("direct", upstream_port, "/mcp", "add"), ("gateway", port, "/mcp", "demo__add")):
        status, data = _answer(target, path, tool)
        if status != 200 or b'"text":"5"' not in data.replace(b" ", b""):
            raise BenchError(f"sanity check '{name}' failed: status {status}, body {data[:500]!r}")
    requests = {"direct": call_request(upstream_port, "/mcp", "add"),
                "gateway": call_request(port, "/mcp", "demo__add")}
    log(f"mcp: {args.overhead_rounds} rounds x {args.overhead_requests} sequential tools/call per target")
    gw = Gateway(port, proc, log_path, "default")
    cpu_before = tree_cpu_s(proc.pid)
    targets = gateway_run(gw, "during the MCP rounds", interleaved_rounds, {"direct": upstream_port, "gateway": port},
                          args.overhead_rounds, args.overhead_requests, args.overhead_requests,
                          lambda name, p: SequentialClient(name, p, requests[name]))
    calls = (args.overhead_rounds + 1) * args.overhead_requests  # the warm-up calls included
    cpu_us = (tree_cpu_s(proc.pid) - cpu_before) / calls * 1e6
    ensure_alive(gw, "after the MCP rounds")
    problems = [f"gateway log has an error line: {line[:300]}" for line in gateway_log_problems(gw)[:1]]
    procs.stop(proc)
    summary = summarize(targets)
    print(render(args, busy, summary, cpu_us, problems), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"mcp": summary, "gateway_cpu_us_per_call": cpu_us, "busy_before": busy,
                                         "problems": problems}, indent=2))
    return 0


def render(args: argparse.Namespace, busy: float, summary: dict[str, Any], cpu_us: float, problems: list[str]) -> str:
    pin = "Gateway pinned to CPU 0, client and MCP server to CPU 1" if GATEWAY_PIN else "No CPU pinning"
    added = summary["gateway"]["added_ms"]
    verdict = "PASS" if added < MCP_ADDED_P50_MS else "FAIL"
    lines = ["## MCP tools/call: gateway against direct (interleaved rounds)", "",
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}, commit `{git_commit()}`. {args.overhead_rounds} rounds; "
             f"in each, {args.overhead_requests} sequential `tools/call` (add 2 + 3, revision 2026-07-28, JSON "
             "answers) per target on one keep-alive connection, taking turns (the order reversed every other "
             f"round), after as many warm-up calls. Upstream: the mcp SDK's MCPServer on uvicorn. {pin}. "
             f"CPU busy before the run: {busy:.0f}%.", "",
             *overhead_table(summary, {"direct": "Direct to the MCP server", "gateway": "Through the gateway's /mcp"}),
             "", f"Gateway CPU per call (all workers, warm-up included): {cpu_us:.0f} µs.", "",
             f"{verdict}: added p50 {added:+.3f} ms (target < {MCP_ADDED_P50_MS:g} ms)"]
    lines += [f"Problem: {p}" for p in problems]
    return "\n".join(lines)
