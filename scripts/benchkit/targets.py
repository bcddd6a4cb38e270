"""The targets the main run is judged by: the product's (added latency, throughput, TTFB, idle
memory), the efficiency targets of one pinned worker (CPU per request and per event, concurrent
streams, open-loop latency), and the generous limits ``--quick`` exits 3 past."""

from __future__ import annotations

from typing import Any

from benchkit.common import percentile
from benchkit.report import pair_rows
from benchkit.streams import StreamStats
from benchkit.wrk import WrkResult

# The product's targets
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_RPS = 2500.0
TARGET_ADDED_TTFB_MS = 1.0
TARGET_IDLE_RSS_MIB = 80.0
TARGET_LEVEL = 16
# Efficiency targets of one worker with a core to itself
TARGET_CPU_PER_EVENT_US = 20.0
TARGET_STREAMS_TTFB_P50_MS = 10.0
TARGET_STREAMS_TTFB_P99_MS = 50.0
TARGET_STREAMS_RATIO = 0.95
TARGET_STREAMS_RSS_MIB = 150.0
TARGET_PACED_P50_MS = 0.5
TARGET_PACED_P99_MS = 2.0
TARGET_RPS_PINNED = 4500.0
TARGET_CPU_PER_REQUEST_US = 220.0
# --quick fails past these (generous: a loaded 2-core machine must not trip them, a regression should)
QUICK_LIMITS: dict[str, tuple[float, bool]] = {  # key: (limit, higher is better)
    "gateway_cpu_us_per_request": (1000.0, False),
    "paced_added_p50_ms": (5.0, False),
    "cpu_us_per_event": (200.0, False),
    "streams_ratio": (0.5, True),
    "streams_added_ttfb_p50_ms": (1500.0, False),
    "streams_errors": (0.0, False),
    "streams_rss_mib": (300.0, False),
}

EFFICIENCY_TARGETS: list[tuple[str, str, float, bool]] = [  # metric, label, limit, higher is better
    ("gateway_rps_c16", f"non-streaming c={TARGET_LEVEL} ≥ {TARGET_RPS_PINNED:,.0f} req/s", TARGET_RPS_PINNED, True),
    ("gateway_cpu_us_per_request", f"CPU per request ≤ {TARGET_CPU_PER_REQUEST_US:g} µs",
     TARGET_CPU_PER_REQUEST_US, False),
    ("paced_added_p50_ms", f"paced added p50 ≤ {TARGET_PACED_P50_MS:g} ms (worst rate)", TARGET_PACED_P50_MS, False),
    ("paced_added_p99_ms", f"paced added p99 ≤ {TARGET_PACED_P99_MS:g} ms (worst rate)", TARGET_PACED_P99_MS, False),
    # the relay's cost per event is the CPU of one more event (the split); "in all" also spreads the
    # stream request's own CPU over its 20 events, which the target counts apart (per event on top of
    # the per-request CPU)
    ("cpu_us_per_event_marginal", f"CPU of one more streamed event ≤ {TARGET_CPU_PER_EVENT_US:g} µs",
     TARGET_CPU_PER_EVENT_US, False),
    ("streams_ratio", f"concurrent streams ≥ {TARGET_STREAMS_RATIO:g} × direct's streams/s", TARGET_STREAMS_RATIO,
     True),
    ("streams_added_ttfb_p50_ms", f"streams added TTFB p50 ≤ {TARGET_STREAMS_TTFB_P50_MS:g} ms",
     TARGET_STREAMS_TTFB_P50_MS, False),
    ("streams_added_ttfb_p99_ms", f"streams added TTFB p99 ≤ {TARGET_STREAMS_TTFB_P99_MS:g} ms",
     TARGET_STREAMS_TTFB_P99_MS, False),
    ("streams_errors", "streams: zero errors", 0.0, False),
    ("streams_rss_mib", f"RSS after the streams ≤ {TARGET_STREAMS_RSS_MIB:g} MiB", TARGET_STREAMS_RSS_MIB, False),
]


def evaluate(main: list[WrkResult], ttfb: dict[str, Any], rss: dict[str, Any]) -> list[dict[str, Any]]:
    """The product's targets, one PASS/FAIL/N/A row each."""
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


def efficiency_metrics(main: list[WrkResult], paced: list[dict[str, Any]], events: StreamStats,
                       streams: dict[str, StreamStats]) -> dict[str, float | None]:
    """The numbers the efficiency targets and the --quick limits are read against."""
    at = {g.conns: (d, g) for d, g in pair_rows(main)}.get(TARGET_LEVEL)
    d, g = streams["direct"], streams["gateway"]

    def ttfb(s: StreamStats, p: float) -> float | None:
        return percentile(s.ttfb_ms, p) if s.ttfb_ms else None

    def minus(x: float | None, y: float | None) -> float | None:
        return x - y if x is not None and y is not None else None

    return {
        "gateway_rps_c16": at[1].rps if at else None,
        "gateway_cpu_us_per_request": at[1].server_cpu_us_per_req if at else None,
        "paced_added_p50_ms": max((r["added_p50_ms"] for r in paced), default=None),
        "paced_added_p99_ms": max((r["added_p99_ms"] for r in paced), default=None),
        "cpu_us_per_event": events.cpu_us_per_event,
        "streams_ratio": g.streams_per_s / d.streams_per_s if d.streams_per_s else None,
        "streams_added_ttfb_p50_ms": minus(ttfb(g, 50), ttfb(d, 50)),
        "streams_added_ttfb_p99_ms": minus(ttfb(g, 99), ttfb(d, 99)),
        "streams_errors": float(g.errors + d.errors),
        "streams_rss_mib": g.rss_mib,
    }


def check_rows(metrics: dict[str, float | None], targets: list[tuple[str, str, float, bool]]) -> list[dict[str, Any]]:
    checks = []
    for key, label, limit, higher in targets:
        value = metrics.get(key)
        if value is None:
            checks.append({"key": key, "label": label, "value": None, "limit": limit, "result": "N/A",
                           "detail": "not measured"})
            continue
        ok = value >= limit if higher else value <= limit
        checks.append({"key": key, "label": label, "value": value, "limit": limit,
                       "result": "PASS" if ok else "FAIL", "detail": f"{value:,.2f}"})
    return checks


def quick_verdict(metrics: dict[str, float | None]) -> int:
    """Print each guarded ratio against its generous limit; 3 when one is past it."""
    failed = 0
    for key, (limit, higher) in QUICK_LIMITS.items():
        value = metrics.get(key)
        ok = value is not None and (value >= limit if higher else value <= limit)
        failed += not ok
        shown = "not measured" if value is None else f"{value:,.2f}"
        print(f"quick: {'ok  ' if ok else 'FAIL'} {key} = {shown} ({'≥' if higher else '≤'} {limit:g})", flush=True)
    print(f"quick: {'FAILED' if failed else 'passed'} ({failed} past the limits)", flush=True)
    return 3 if failed else 0
