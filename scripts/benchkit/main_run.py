"""The main run (and ``--quick``): one gateway on the default transport, measured side by side with
direct: wrk per concurrency level, streaming TTFB, open-loop latency, the server floor, CPU per
streamed event and its split, the concurrent streams and memory; then the transports. Prints the
report, writes --json, and with --quick gives the verdict (exit 3 past a limit)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchkit.common import GATEWAY_PIN, log, request_body
from benchkit.floor import floor_lines, phase_floor
from benchkit.gateway_process import Gateway, gateway_run
from benchkit.paced import paced_run
from benchkit.paced_fake import LONG_STREAM_EVENTS
from benchkit.report import paced_lines, pair_rows, render, split_lines, streams_lines
from benchkit.session import Bench, start_fakes
from benchkit.streams import StreamStats, describe_streams, event_split, run_streams
from benchkit.system import Processes, cpu_busy_percent, tree_rss
from benchkit.targets import EFFICIENCY_TARGETS, check_rows, efficiency_metrics, evaluate, quick_verdict
from benchkit.tools import ensure_tools, git_commit, module_version, tool_version
from benchkit.transports import phase_transports, transport_lines
from benchkit.ttfb import measure_ttfb
from benchkit.wrk import WrkResult, describe, write_lua, wrk_problems


def phase_nonstreaming(b: Bench, gw: Gateway) -> list[WrkResult]:
    main: list[WrkResult] = []
    for c in b.args.levels:
        for target, port in (("direct", b.fake.json_port), ("gateway", gw.port)):
            server = gw.proc.pid if target == "gateway" else b.fake.proc.pid
            r = gateway_run(gw, f"during the c={c} {target} run", b.wrk_run, port, c, b.args.duration, target,
                            "default", server)
            main.append(r)
            log(describe(r))
    return main


def phase_paced(b: Bench, gw: Gateway) -> list[dict[str, Any]]:
    rows = []
    for rate in b.args.rates:
        d = paced_run(b.fake.json_port, rate, b.args.paced_duration, "direct")
        g = gateway_run(gw, f"during the paced {rate:g} req/s run", paced_run, gw.port, rate,
                        b.args.paced_duration, "gateway")
        rows.append({"rate": rate, "direct": d, "gateway": g, "added_p50_ms": g["p50_ms"] - d["p50_ms"],
                     "added_p99_ms": g["p99_ms"] - d["p99_ms"]})
        log(f"paced {rate:g} req/s: direct p50 {d['p50_ms']:.3f} p99 {d['p99_ms']:.3f} ms, gateway p50 "
            f"{g['p50_ms']:.3f} p99 {g['p99_ms']:.3f} ms (non-200: {d['non_200']}/{g['non_200']})")
    return rows


def phase_events(b: Bench, gw: Gateway) -> tuple[StreamStats, StreamStats]:
    """CPU per streamed event over ``--event-streams`` concurrent streams, at two stream lengths."""
    a = b.args
    events = gateway_run(gw, "during the CPU-per-event run", run_streams, gw.port, b.paced_body,
                         a.event_streams, a.stream_duration, "gateway", gw.proc.pid)
    log(describe_streams(events))
    long_events = gateway_run(gw, "during the long-stream run", run_streams, gw.port, b.paced_long_body,
                              a.event_streams, a.stream_duration, "gateway", gw.proc.pid)
    log(describe_streams(long_events) + f"  [{LONG_STREAM_EVENTS} events a stream]")
    return events, long_events


def phase_streams(b: Bench, gw: Gateway, conns: int) -> dict[str, StreamStats]:
    a = b.args
    d = run_streams(b.fake.paced_port, b.paced_body, conns, a.stream_duration, "direct")
    log(describe_streams(d))
    g = gateway_run(gw, f"during the {conns}-stream run", run_streams, gw.port, b.paced_body, conns,
                    a.stream_duration, "gateway", gw.proc.pid)
    log(describe_streams(g))
    return {"direct": d, "gateway": g}


def run(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    tools = ensure_tools(args.fake)
    started = time.monotonic()
    busy_before = cpu_busy_percent()
    if busy_before > 20:
        log(f"warning: the machine is already {busy_before:.0f}% busy before the run; the numbers will be noisy")
    fake = start_fakes(args, procs, tmp, tools)
    b = Bench(args, procs, tmp, sys.executable, tools["wrk"], write_lua(tmp, "chat", request_body(False)), fake)
    out = measure(b)
    procs.stop(fake.proc)
    meta = run_meta(b, busy_before, started)
    metrics = efficiency_metrics(out["main"], out["paced"], out["events"], out["streams"])
    metrics.update(out["split"])
    checks = evaluate(out["main"], out["ttfb"], out["rss"]) + check_rows(metrics, EFFICIENCY_TARGETS)
    extra = (paced_lines(args, out["paced"]) + streams_lines(args, out["events"], out["streams"])
             + transport_lines(args, out["transports"]) + split_lines(out["split"], out["events"], out["long_events"])
             + floor_lines(out["floor"], out["main"], out["paced"]))
    print(render(args, meta, out["main"], out["ttfb"], out["rss"], extra, checks, out["problems"]), flush=True)
    if args.json:
        write_json(args, meta, out, metrics, checks)
    if args.quick and busy_before > 50:
        print(f"quick: the machine was {busy_before:.0f}% busy before the run (other work): the open-loop and "
              "streams numbers below say more about that work than about the gateway; run it again when quiet",
              flush=True)
    return quick_verdict(metrics) if args.quick else 0


def measure(b: Bench) -> dict[str, Any]:
    """Every measurement of the main run, in order: the main gateway's, then the transports'."""
    args, fake = b.args, b.fake
    log(f"starting the gateway ({args.workers} worker(s), default transport)")
    gw = b.start(args.main_transport, "main")
    rss: dict[str, Any] = {"idle": gw.idle_rss}
    log(f"gateway idle RSS {rss['idle']['total_mib']:.1f} MiB over {rss['idle']['processes']} processes")
    log("warming up")
    b.warm(fake.json_port, "direct", "default")
    gateway_run(gw, "during the warm-up", b.warm, gw.port, "gateway", "default")
    main = phase_nonstreaming(b, gw)
    log(f"streaming TTFB: {args.ttfb_requests} requests each, direct and gateway alternating")
    ttfb = gateway_run(gw, "during the TTFB measurement", measure_ttfb, fake, gw, args.ttfb_requests)
    paced = phase_paced(b, gw)
    floor = phase_floor(b)  # Granian + Falcon alone, for the breakdown
    events, long_events = phase_events(b, gw)
    streams = phase_streams(b, gw, args.streams)
    rss["after_load"] = tree_rss(gw.proc.pid)
    log(f"gateway RSS after the load {rss['after_load']['total_mib']:.1f} MiB")
    problems = wrk_problems(main)
    b.stop(gw, problems)
    transports = phase_transports(b, problems)
    return {"main": main, "ttfb": ttfb, "rss": rss, "paced": paced, "floor": floor, "events": events,
            "long_events": long_events, "split": event_split(events, long_events), "streams": streams,
            "transports": transports, "problems": problems}


def run_meta(b: Bench, busy_before: float, started: float) -> dict[str, Any]:
    fake = b.fake
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "granian": module_version("granian"), "wrk": tool_version([b.wrk, "-v"]),
        "fake": f"{fake.version}, 1 worker" if fake.kind == "nginx" else fake.version,
        "main_transport": b.args.main_transport or "the gateway's default (GATEWAY_HTTP_TRANSPORT unset)",
        "sink": "webhook to nginx /sink (--with-sink)" if b.args.with_sink else "none",
        "pinned": bool(GATEWAY_PIN), "cpu_busy_before_run_percent": round(busy_before, 1),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def write_json(args: argparse.Namespace, meta: dict[str, Any], out: dict[str, Any], metrics: dict[str, float | None],
               checks: list[dict[str, Any]]) -> None:
    def res(r: WrkResult) -> dict[str, Any]:
        return dict(r.__dict__)

    events: StreamStats = out["events"]
    data = {
        "meta": meta, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "non_streaming": [
            {"concurrency": g.conns, "direct": res(d), "gateway": res(g), "added_p50_ms": g.p50_ms - d.p50_ms,
             "added_p99_ms": g.p99_ms - d.p99_ms, "rps_ratio": g.rps / d.rps if d.rps else None}
            for d, g in pair_rows(out["main"])],
        "ttfb": out["ttfb"], "rss": out["rss"], "paced": out["paced"], "cpu_per_event": events.summary(),
        "streams": {k: v.summary() for k, v in out["streams"].items()},
        "transports": [{"transport": t["transport"], "round": t["round"], "direct": res(t["direct"]),
                        "gateway": res(t["gateway"]), "events": t["events"].summary(),
                        "idle_rss_mib": t["idle_rss_mib"]} for t in out["transports"]],
        "metrics": metrics, "checks": checks, "problems": out["problems"],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    log(f"wrote {args.json}")
