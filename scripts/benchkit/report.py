"""The Markdown of the main run: number formats, the non-streaming / TTFB / memory report with its
targets, and the tables of the open-loop latency, the concurrent streams and the CPU split."""

from __future__ import annotations

import argparse
from typing import Any

from benchkit.common import GATEWAY_ENV, GATEWAY_PIN, percentile
from benchkit.streams import StreamStats
from benchkit.wrk import WrkResult


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


def fmt_us(x: float | None) -> str:
    return f"{x:,.1f} µs" if x is not None else "n/a"


def pair_rows(results: list[WrkResult]) -> list[tuple[WrkResult, WrkResult]]:
    pairs = []
    for r in results:
        if r.target == "gateway":
            d = next(x for x in results if x.target == "direct" and x.conns == r.conns and x.transport == r.transport)
            pairs.append((d, r))
    return pairs


def _rss_split(snapshot: dict[str, Any]) -> str:
    parts = list(snapshot["per_process_mib"].values())
    if len(parts) < 2:
        return ""
    return f" (main {parts[0]:.1f} + worker{'s' if len(parts) > 2 else ''} " \
           + " + ".join(f"{x:.1f}" for x in parts[1:]) + ")"


def render(args: argparse.Namespace, meta: dict[str, Any], main: list[WrkResult], ttfb: dict[str, Any],
           rss: dict[str, Any], extra: list[str], checks: list[dict[str, Any]], problems: list[str]) -> str:
    lines = ["## Benchmark", ""]
    helper = "SCHED_BATCH (--batch-helper-threads)" if "GATEWAY_BATCH_HELPER_THREADS" in GATEWAY_ENV \
        else "default scheduling"
    tracing = "on (--tracing, spans to a local OTLP sink)" if "OTEL_EXPORTER_OTLP_ENDPOINT" in GATEWAY_ENV else "off"
    lines.append(
        f"{meta['date']}, commit `{meta['commit']}`, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"Granian {meta['granian']}, {args.workers} gateway worker(s), upstream transport: {meta['main_transport']}, "
        f"helper threads: {helper}, tracing: {tracing}. "
        f"Fake upstream: {meta['fake']}. Sink of access records: {meta.get('sink', 'none')}. "
        f"wrk: 1 thread, {args.duration:g} s per run, "
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
    lines += ["", f"Gateway memory (RSS summed over the Granian process tree, {rss['idle']['processes']} processes): "
                  f"idle {rss['idle']['total_mib']:.1f} MiB{_rss_split(rss['idle'])}, "
                  f"after the load {rss['after_load']['total_mib']:.1f} MiB{_rss_split(rss['after_load'])}."]
    lines += extra
    lines += ["", "Targets:", ""]
    for c in checks:
        lines.append(f"- {c['result']}: {c['label']} — {c['detail']}")
    if problems:
        lines += ["", "Problems seen:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines)


def paced_lines(args: argparse.Namespace, paced: list[dict[str, Any]]) -> list[str]:
    pin = "gateway pinned to CPU 0, load generators and fakes to CPU 1" if GATEWAY_PIN else "no CPU pinning"
    lines = ["", f"Open-loop latency: one keep-alive connection, requests due at a fixed rate, latency from the "
                 f"due time ({args.paced_duration:g} s per run; {pin}):", "",
             "| Rate | Direct p50 | Gateway p50 | Added p50 | Direct p99 | Gateway p99 | Added p99 | Non-200 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in paced:
        d, g = r["direct"], r["gateway"]
        lines.append(f"| {r['rate']:g}/s | {fmt_ms(d['p50_ms'])} | {fmt_ms(g['p50_ms'])} "
                     f"| {fmt_ms(r['added_p50_ms'], True)} | {fmt_ms(d['p99_ms'])} | {fmt_ms(g['p99_ms'])} "
                     f"| {fmt_ms(r['added_p99_ms'], True)} | {d['non_200'] + g['non_200']} |")
    return lines


def streams_lines(args: argparse.Namespace, events: StreamStats, streams: dict[str, StreamStats]) -> list[str]:
    return ["", f"Streams of {args.stream_events} events {args.stream_interval * 1000:g} ms apart (one event per "
                f"upstream read), back to back on each connection for {args.stream_duration:g} s:", "",
            "| Streams | Target | Streams/s | vs direct | TTFB p50 | Added p50 | TTFB p99 | Added p99 | Events "
            "| Gateway CPU / event | RSS after | Errors |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            stream_row(events, None), stream_row(streams["direct"], None),
            stream_row(streams["gateway"], streams["direct"])]


def split_lines(split: dict[str, float | None], short: StreamStats, long: StreamStats) -> list[str]:
    def n(s: StreamStats) -> int:
        return round(s.events / s.completed) if s.completed else 0

    return ["", f"CPU per streamed event split ({long.streams} streams of {n(short)} and of {n(long)} events, "
                f"CPU per stream = request + events × event): one more event "
                f"{fmt_us(split['cpu_us_per_event_marginal'])}, the stream request itself "
                f"{fmt_us(split['cpu_us_per_stream_request'])} (long run: {long.events:,} events, "
                f"{fmt_us(long.cpu_us_per_event)} per event all in, {long.errors} errors)."]


def stream_row(s: StreamStats, ref: StreamStats | None) -> str:
    def pct(x: StreamStats, p: float) -> float | None:
        return percentile(x.ttfb_ms, p) if x.ttfb_ms else None

    def ms(x: float | None, signed: bool = False) -> str:
        return fmt_ms(x, signed) if x is not None else ""

    p50, p99 = pct(s, 50), pct(s, 99)
    r50, r99 = (pct(ref, 50), pct(ref, 99)) if ref else (None, None)
    add50 = p50 - r50 if p50 is not None and r50 is not None else None
    add99 = p99 - r99 if p99 is not None and r99 is not None else None
    ratio = fmt_ratio(s.streams_per_s, ref.streams_per_s) if ref else ""
    rss = f"{s.rss_mib:.1f} MiB" if s.rss_mib is not None else ""
    return (f"| {s.streams} | {s.target} | {s.streams_per_s:,.1f} | {ratio} | {ms(p50)} | {ms(add50, True)} "
            f"| {ms(p99)} | {ms(add99, True)} | {s.events:,} | {fmt_us(s.cpu_us_per_event)} | {rss} | {s.errors} |")
