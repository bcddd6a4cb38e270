"""``--stores``: the same non-streaming load through a gateway on each store (memory, SQLite, Redis;
Redis with one and two workers), whose client has limits and a budget so every request goes
through the store's windows and spend. The rows take turns, --rounds times; each keeps its best."""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchkit.common import CLIENT_KEY, GATEWAY_PIN, free_port, log, request_body, wait_until
from benchkit.gateway_process import Gateway, gateway_config, gateway_run, gateway_workdir, sanity_check, spawn_gateway
from benchkit.report import fmt_us
from benchkit.session import Bench, start_fakes
from benchkit.system import Processes, busy_between, machine_ticks, tree_cpu_s
from benchkit.tools import ensure_tools, which
from benchkit.wrk import WrkResult, describe, write_lua, wrk_problems

STORE_CLIENT = (f"  - {{id: bench, key: {CLIENT_KEY}, "
                "limits: {req_per_min: 1000000000, tokens_per_min: 1000000000000}, budget: {daily_usd: 1000000000}}\n")
StoreRow = tuple[str, int, bool, Gateway]  # label, workers, pinned, its gateway


def store_gateway(b: Bench, tag: str, storage: str, workers: int, pinned: bool) -> Gateway:
    """A gateway whose client has limits and a budget (so every request goes through the store's
    windows and spend), on ``storage``; pinned to CPU 0 like the main run, or free on every core."""
    work = b.tmp / f"gateway-store-{tag}"
    port = free_port()
    config = gateway_config(port, b.fake).replace(f"  - {{id: bench, key: {CLIENT_KEY}}}\n", STORE_CLIENT)
    env = gateway_workdir(work, config + storage, port, workers, b.python)
    proc, log_path = spawn_gateway(b.procs, b.python, work, env, port, pinned)
    time.sleep(1.0 + workers)  # every worker up
    gw = Gateway(port, proc, log_path, tag)
    sanity_check(b.fake, gw, stream=False)
    return gw


def store_rows_plan(redis_addr: str | None) -> list[tuple[str, str, int, bool]]:
    """(label, storage YAML, workers, pinned to CPU 0)."""
    redis = f'storage: {{type: redis, addr: "{redis_addr}"}}\n'
    rows = [("memory", "storage: {type: memory}\n", 1, True), ("sqlite", "", 1, True)]
    if redis_addr:
        rows.append(("redis", redis, 1, True))
    # several workers on SQLite alone are refused (gateway/store/preflight.py: measured here before,
    # 0.45-0.69x of one worker's req/s); with Redis they share limits:
    if redis_addr:
        rows += [("redis, 1 worker, unpinned", redis, 1, False), ("redis, 2 workers, unpinned", redis, 2, False)]
    return rows


def start_redis(procs: Processes) -> tuple[str | None, int | None]:
    """A throw-away redis-server (on CPU 1 when the run pins): its address and pid; (None, None)
    when redis-server is not installed."""
    redis_bin = which("redis-server")
    if not redis_bin:
        log("redis-server not found: the redis rows are skipped (Debian package redis-server)")
        return None, None
    port = free_port()
    pid = procs.start("redis", [*([] if not GATEWAY_PIN else ["taskset", "-c", "1"]), redis_bin, "--port",
                                str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
    wait_until(lambda: port_open(port), "redis-server", 20)
    return f"127.0.0.1:{port}", pid


def run_stores(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    """The same non-streaming load (wrk c = the highest --concurrency level) through each store."""
    tools = ensure_tools(args.fake)
    fake = start_fakes(args, procs, tmp, tools)
    b = Bench(args, procs, tmp, sys.executable, tools["wrk"], write_lua(tmp, "chat", request_body(False)), fake)
    redis_addr, redis_pid = start_redis(procs)
    conns = max(args.levels)
    problems: list[str] = []
    # Every row's gateway runs at once (idle but for its own turn); the rows take turns, --rounds
    # times, and each keeps its best round: the machine is shared, and a burst of someone else's
    # work then costs one round of one row, not the comparison.
    rows: list[StoreRow] = []
    for label, storage, workers, pinned in store_rows_plan(redis_addr):
        log(f"store row: {label}: starting its gateway")
        gw = store_gateway(b, label.replace(", ", "-").replace(" ", "_"), storage, workers, pinned)
        gateway_run(gw, "during the warm-up", b.warm, gw.port, "gateway", label)
        rows.append((label, workers, pinned, gw))
    best, extra = store_rounds(b, rows, conns, redis_pid, problems)
    for _, _, _, gw in rows:
        b.stop(gw, problems)
    results = [(label, workers, pinned, best[label]) for label, workers, pinned, _ in rows]
    print(render_store_rows(results, conns, problems, extra), flush=True)
    return 0


def store_rounds(b: Bench, rows: list[StoreRow], conns: int, redis_pid: int | None, problems: list[str]
                 ) -> tuple[dict[str, WrkResult], dict[str, tuple[float | None, float]]]:
    """Each row's best round, and of that round: (redis-server CPU µs per request, share of both
    cores busy)."""
    best: dict[str, WrkResult] = {}
    extra: dict[str, tuple[float | None, float]] = {}
    for round_no in range(1, b.args.rounds + 1):
        for label, _, _, gw in rows:
            redis_cpu0, machine0 = tree_cpu_s(redis_pid) if redis_pid else 0.0, machine_ticks()
            r = gateway_run(gw, "during the store row", b.wrk_run, gw.port, conns, b.args.duration, "gateway", label,
                            gw.proc.pid)
            busy = busy_between(machine0, machine_ticks())
            log(f"round {round_no}, {label}: {describe(r)}, machine {busy:.0f}% busy")
            problems += wrk_problems([r])
            if label not in best or r.rps > best[label].rps:
                best[label] = r
                redis_us = None
                if redis_pid is not None and label.startswith("redis") and r.requests:
                    redis_us = (tree_cpu_s(redis_pid) - redis_cpu0) * 1e6 / r.requests
                extra[label] = (redis_us, busy)
    return best, extra


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def render_store_rows(results: list[tuple[str, int, bool, WrkResult]], conns: int, problems: list[str],
                      extra: dict[str, tuple[float | None, float]] | None = None) -> str:
    by = {label: r for label, _, _, r in results}
    memory = by.get("memory")
    lines = [f"## Stores: wrk c={conns}, non-streaming, client with limits and a budget "
             "(each row's best of --rounds, the rows taking turns)", "",
             "| store | workers | CPU | req/s | p50 ms | p99 ms | gateway CPU µs/req | redis-server CPU µs/req "
             "| both cores busy | vs memory / vs 1 worker |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, workers, pinned, r in results:
        if workers > 1:
            one = by.get(label.replace("2 workers", "1 worker"))
            versus = f"{r.rps / one.rps:.2f}x of 1 worker" if one and one.rps else "-"
            if one and one.server_cpu_us_per_req and r.server_cpu_us_per_req:
                # what the workers would give on cores of their own (the load generator shares these):
                # each one's requests/s is 1 / its CPU per request
                versus += f" (CPU-bound: {workers * one.server_cpu_us_per_req / r.server_cpu_us_per_req:.2f}x)"
        else:
            versus = f"{r.rps / memory.rps:.0%}" if memory and memory.rps and pinned else "-"
        cpu = "CPU 0 (wrk, fake on CPU 1)" if pinned and GATEWAY_PIN else "both cores, shared with wrk and fake"
        redis_us, busy = (extra or {}).get(label, (None, 0.0))
        lines.append(f"| {label} | {workers} | {cpu} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                     f"{fmt_us(r.server_cpu_us_per_req)} | {fmt_us(redis_us)} | {busy:.0f}% | {versus} |")
    if problems:
        lines += ["", "Problems: " + "; ".join(problems)]
    return "\n".join(lines)
