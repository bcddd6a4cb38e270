"""The server floor next to the gateway: Granian embedded + one Falcon route answering a fixed
completion (``floor_server.py``, no upstream), pinned like the gateway; c=16 req/s and CPU per
request, and the paced rates' added latency, against the same direct runs as the gateway."""

from __future__ import annotations

import subprocess
from typing import Any

from benchkit.common import GATEWAY_PIN, PACKAGE_DIR, REPO, free_port, http_call, log, wait_until
from benchkit.paced import paced_run
from benchkit.report import fmt_cpu, fmt_int, fmt_ms
from benchkit.session import Bench
from benchkit.targets import TARGET_LEVEL
from benchkit.wrk import WrkResult, describe


def phase_floor(b: Bench) -> dict[str, Any]:
    port = free_port()
    logf = b.tmp / "floor.log"
    with logf.open("ab") as out:
        proc = b.procs.start("floor", [*GATEWAY_PIN, b.python, str(PACKAGE_DIR), "--serve-floor", str(port)],
                             stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_until(lambda: http_call(port, "GET", "/health", timeout=1)[0] == 200, "the floor server", 30, proc, logf)
        b.wrk_run(port, TARGET_LEVEL, max(1.0, b.args.warmup), "floor", "floor")
        wrk = b.wrk_run(port, TARGET_LEVEL, b.args.duration, "floor", "floor", proc.pid)
        log(f"{describe(wrk)}  [server floor: Granian + Falcon, no upstream]")
        paced = []
        for rate in b.args.rates:
            d = paced_run(b.fake.json_port, rate, b.args.paced_duration, "direct")
            f = paced_run(port, rate, b.args.paced_duration, "floor")
            paced.append({"rate": rate, "added_p50_ms": f["p50_ms"] - d["p50_ms"],
                          "added_p99_ms": f["p99_ms"] - d["p99_ms"]})
            log(f"paced {rate:g} req/s: server floor added p50 {paced[-1]['added_p50_ms']:+.3f} ms, "
                f"p99 {paced[-1]['added_p99_ms']:+.3f} ms")
    finally:
        b.procs.stop(proc)
    return {"wrk": wrk, "paced": paced}


def _added(rows: list[dict[str, Any]]) -> str:
    return " | ".join(f"{fmt_ms(r['added_p50_ms'], True)} / {fmt_ms(r['added_p99_ms'], True)}" for r in rows)


def floor_lines(floor: dict[str, Any], main: list[WrkResult], paced: list[dict[str, Any]]) -> list[str]:
    """The floor next to the gateway: what Granian + Falcon cost, and what is the gateway's own."""
    wrk = floor["wrk"]
    gw = next((r for r in main if r.target == "gateway" and r.conns == TARGET_LEVEL), None)
    lines = ["", "Server floor (`scripts/benchkit/floor_server.py`: Granian embedded + one Falcon route answering a "
                 f"fixed completion, no upstream; pinned like the gateway), c={TARGET_LEVEL} and paced:", "",
             "| | req/s | CPU / request | " + " | ".join(f"added p50 / p99 at {r['rate']:g}/s" for r in floor["paced"])
             + " |", "|---|---:|---:|" + "---:|" * len(floor["paced"])]
    lines.append(f"| Server floor | {fmt_int(wrk.rps)} | {fmt_cpu(wrk)} | {_added(floor['paced'])} |")
    if gw is not None:
        lines.append(f"| Gateway | {fmt_int(gw.rps)} | {fmt_cpu(gw)} | {_added(paced)} |")
        if gw.server_cpu_us_per_req is not None and wrk.server_cpu_us_per_req is not None:
            own = gw.server_cpu_us_per_req - wrk.server_cpu_us_per_req
            lines.append(f"| Gateway's own (difference) | | {own:,.0f} µs "
                         "| " + " | ".join(f"{fmt_ms(g['added_p50_ms'] - f['added_p50_ms'], True)} / "
                                           f"{fmt_ms(g['added_p99_ms'] - f['added_p99_ms'], True)}"
                                           for g, f in zip(paced, floor["paced"], strict=False)) + " |")
    return lines
