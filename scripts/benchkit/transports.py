"""The upstream transports side by side (GATEWAY_HTTP_TRANSPORT), and the default one with the
request log on: a gateway each, --rounds times, c=16 requests/s (direct run just before) and CPU
per streamed event."""

from __future__ import annotations

import argparse
from typing import Any

from benchkit.common import log
from benchkit.gateway_process import gateway_run
from benchkit.report import fmt_cpu, fmt_int, fmt_ms, fmt_ratio, fmt_us
from benchkit.session import Bench
from benchkit.streams import describe_streams, run_streams
from benchkit.targets import TARGET_LEVEL
from benchkit.wrk import describe, wrk_problems


def phase_transports(b: Bench, problems: list[str]) -> list[dict[str, Any]]:
    """Per transport (and round): c=16 req/s (direct interleaved) and CPU per streamed event."""
    specs = [(t, False) for t in b.args.transport_list]
    if not b.args.no_log_row:
        specs.append(("", True))  # the default transport with the request log on
    rows = []
    for rnd in range(1, b.args.rounds + 1 if specs else 1):
        for transport, log_on in specs:
            rows.append(transport_row(b, rnd, transport, log_on, problems))
    return rows


def transport_row(b: Bench, rnd: int, transport: str, log_on: bool, problems: list[str]) -> dict[str, Any]:
    name = (transport or "default") + (", request log on" if log_on else "")
    log(f"round {rnd}: gateway with {name}")
    gw = b.start(transport or None, f"r{rnd}-{transport or 'default'}{'-log' if log_on else ''}", log_on)
    b.warm(b.fake.json_port, "direct", name)
    gateway_run(gw, "during the warm-up", b.warm, gw.port, "gateway", name)
    d = b.wrk_run(b.fake.json_port, TARGET_LEVEL, b.args.duration, "direct", name, b.fake.proc.pid)
    g = gateway_run(gw, f"during the c={TARGET_LEVEL} run", b.wrk_run, gw.port, TARGET_LEVEL,
                    b.args.duration, "gateway", name, gw.proc.pid)
    log(f"{describe(g)}  [{name}]")
    ev = gateway_run(gw, "during the CPU-per-event run", run_streams, gw.port, b.paced_body,
                     b.args.event_streams, b.args.stream_duration, "gateway", gw.proc.pid)
    log(f"{describe_streams(ev)}  [{name}]")
    problems += wrk_problems([d, g])
    b.stop(gw, problems)
    return {"transport": name, "round": rnd, "direct": d, "gateway": g, "events": ev,
            "idle_rss_mib": gw.idle_rss["total_mib"]}


def transport_lines(args: argparse.Namespace, transports: list[dict[str, Any]]) -> list[str]:
    if not transports:
        return []
    lines = ["", f"Upstream HTTP transport (GATEWAY_HTTP_TRANSPORT), each in its own gateway, {args.rounds} "
                 f"round(s): non-streaming c={TARGET_LEVEL} ({args.duration:g} s, direct run just before), and "
                 f"CPU per event over {args.event_streams} concurrent streams:", "",
             "| Transport | Round | Direct req/s | Gateway req/s | Gateway / direct | Added p50 | Added p99 "
             "| CPU / request | CPU / event | Idle RSS | Errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in transports:
        d, g, ev = t["direct"], t["gateway"], t["events"]
        lines.append(f"| {t['transport']} | {t['round']} | {fmt_int(d.rps)} | {fmt_int(g.rps)} "
                     f"| {fmt_ratio(g.rps, d.rps)} | {fmt_ms(g.p50_ms - d.p50_ms, True)} "
                     f"| {fmt_ms(g.p99_ms - d.p99_ms, True)} | {fmt_cpu(g)} | {fmt_us(ev.cpu_us_per_event)} "
                     f"| {t['idle_rss_mib']:.1f} MiB | {g.error_total + ev.errors} |")
    return lines
