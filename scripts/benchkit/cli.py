"""Benchmark the gateway against fake upstreams, side by side with direct, in one run.

What it does (the gateway pinned to CPU 0 with taskset; wrk, the clients and the fakes on CPU 1):
  1. starts the fake upstreams (nginx with fixed answers, or tests/fake_upstream.py; and a paced
     SSE fake that sends each stream's events INTERVAL apart, one write per event) and the
     gateway (``python -m gateway serve``) from a temporary directory, on free loopback ports;
  2. wrk (1 thread, --latency): requests/s and p50/p99 at each concurrency (default 1, 16, 64),
     non-streaming, DIRECT to the fake and THROUGH the gateway, interleaved per level, with the
     gateway's CPU per request (utime+stime from /proc/PID/stat over the run / requests);
  3. streaming time-to-first-byte over N sequential requests, direct and gateway alternately;
  4. open-loop latency: one keep-alive connection, requests due at a fixed rate (100 and 500/s),
     latency counted from each request's due time (no coordinated omission), direct vs gateway;
  5. CPU per streamed event: the gateway's CPU time over a run of 200 concurrent paced streams
     divided by the events relayed, and split (a second run of 101-event streams) into the CPU
     of one more event and of the stream request itself; then 1,000 concurrent streams (21
     events 50 ms apart), direct and through the gateway: streams/s, TTFB p50/p99, errors, RSS;
  6. per upstream transport (GATEWAY_HTTP_TRANSPORT: lean, aiohttp, reqwest; --rounds 2) and
     with the request log on: a gateway each, c=16 requests/s and CPU per event;
  7. prints Markdown tables and a PASS/FAIL line per target (the product's targets and the
     efficiency targets of one pinned worker).

``--with-sink`` adds a webhook sink of access records to every gateway of the run (nginx answers
its POSTs): the same run without it is what it costs.

``--quick`` (under a minute) runs c=16, the paced rates, CPU per event and the 1,000 streams only,
prints the guarded ratios and exits 3 when one is past its generous limit (QUICK_LIMITS in
benchkit/targets.py): run it before a performance-sensitive change. Timing is not a test: CI does
not run it.

Instead of the main run: ``--stores`` (the same load through each store), ``--protocols`` (the
Anthropic and Gemini adapters and the Anthropic, Responses and Google dialects against the OpenAI
pass-through), ``--overhead`` (sequential added latency in interleaved rounds, the method public
gateway comparisons use; ``--with-litellm`` adds LiteLLM proxy, installed once into a cached
virtualenv, to the same rounds), ``--mcp`` (an MCP tools/call through the gateway's /mcp against the
same call direct to the MCP server, in interleaved rounds), ``--guardrails`` (the pii and secrets
guards' cost per 4 KB prompt and per streamed event, in-process), ``--guardrails-e2e`` (the same
guards end to end: two gateways, guarded and not, side by side under wrk).

Exit status: 0 when the benchmark ran (whatever PASS/FAIL says), 3 when --quick found a ratio past
its limit, 1 on an error (a process would not start, a sanity answer was wrong, wrong
arguments...), 2 when a tool is missing and cannot be installed, 130 on Ctrl-C. Every process it
starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchkit.common import GATEWAY_ENV, BenchError
from benchkit.guardrails import run_guardrails
from benchkit.guardrails_e2e import run_guardrails_e2e
from benchkit.main_run import run
from benchkit.mcp import run_mcp
from benchkit.otlp_sink import sink_stats, start_sink
from benchkit.overhead_run import run_overhead
from benchkit.protocols import run_protocols
from benchkit.stores import run_stores
from benchkit.system import Processes, pin_cpus, raise_fd_limit

TRANSPORTS = ("lean", "aiohttp", "reqwest", "httpx")


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(prog="scripts/bench", description=doc.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(doc.splitlines()[2:]))
    p.add_argument("--quick", action="store_true",
                   help="under a minute: c=16, paced 100 and 500 req/s, CPU per event, 1,000 streams; prints the "
                        "ratios and exits 3 past generous thresholds (QUICK_LIMITS). Run it before a "
                        "performance-sensitive change")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up per target (default 2)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated wrk connection counts (default 1,16,64)")
    p.add_argument("--ttfb-requests", type=int, default=200,
                   help="sequential streaming requests per target (default 200)")
    p.add_argument("--paced-rates", default="100,500", help="open-loop rates on one connection (default 100,500)")
    p.add_argument("--paced-duration", type=float, default=5.0, help="seconds per paced run (default 5)")
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams for the scale row (default 1000)")
    p.add_argument("--event-streams", type=int, default=200,
                   help="concurrent streams for CPU per event, below saturation (default 200)")
    p.add_argument("--stream-duration", type=float, default=6.0, help="seconds per streams run (default 6)")
    p.add_argument("--stream-events", type=int, default=21, help="events per stream, [DONE] included (default 21)")
    p.add_argument("--stream-interval", type=float, default=0.05, help="seconds between events (default 0.05)")
    p.add_argument("--fake", choices=("nginx", "python"), default="nginx",
                   help="fake upstream: nginx with fixed answers (default, fast) or tests/fake_upstream.py")
    p.add_argument("--transports", default="lean,aiohttp,reqwest",
                   help="upstream transports compared (c=16 req/s and CPU per event), each in its own gateway; "
                        "'' for none (default lean,aiohttp,reqwest; httpx also known)")
    p.add_argument("--main-transport", choices=("reqwest", "aiohttp", "lean", "httpx"),
                   help="GATEWAY_HTTP_TRANSPORT for the main phase (default: unset, the gateway's default)")
    p.add_argument("--rounds", type=int, default=2,
                   help="times the transport comparison (with --stores: every store row) is repeated (default 2)")
    p.add_argument("--no-log-row", action="store_true", help="skip the row with the request log on")
    p.add_argument("--with-sink", action="store_true",
                   help="every gateway of the run sends each access record to a webhook sink (POSTs to the nginx "
                        "fake's /sink, answered 204); compare with the same run without it. Needs --fake nginx")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the gateway to CPU 0 and the load generators and fakes to CPU 1")
    p.add_argument("--workers", type=int, default=1, help="gateway (Granian) workers (default 1)")
    p.add_argument("--tracing", action="store_true",
                   help="run the gateways with OpenTelemetry tracing on (OTEL_EXPORTER_OTLP_ENDPOINT set to a "
                        "local sink that accepts and discards OTLP/HTTP): compare with a run without it")
    p.add_argument("--batch-helper-threads", action="store_true",
                   help="run the gateways with GATEWAY_BATCH_HELPER_THREADS=true (gateway/server/sched.py: for a "
                        "worker with a core to itself, as the pinned gateway here has)")
    add_mode_arguments(p)
    p.add_argument("--json", type=Path, help="also write the raw numbers to this JSON file")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    return p


def add_mode_arguments(p: argparse.ArgumentParser) -> None:
    """The runs that replace the main one, and their own options."""
    p.add_argument("--stores", action="store_true",
                   help="instead of the main run: the store rows (memory, sqlite, redis; one and two workers)")
    p.add_argument("--protocols", action="store_true",
                   help="instead of the main run: one row per dialect and protocol (OpenAI pass-through, the "
                        "Anthropic and Gemini adapters, the Anthropic and Google dialects to OpenAI and passed "
                        "through, Responses to a chat-only provider; whole and streamed), gateway CPU per request "
                        "and per event")
    p.add_argument("--overhead", action="store_true",
                   help="instead of the main run: sequential added latency, direct and gateway in interleaved "
                        "rounds (median of the round medians, IQR of the per-round differences)")
    p.add_argument("--mcp", action="store_true",
                   help="instead of the main run: MCP tools/call through the gateway against direct to the same MCP "
                        "server, interleaved rounds (--overhead-rounds, --overhead-requests); target: under 1 ms added "
                        "at p50")
    p.add_argument("--overhead-rounds", type=int, default=20, help="rounds of --overhead and --mcp (default 20)")
    p.add_argument("--overhead-requests", type=int, default=200,
                   help="sequential requests per target in each --overhead round (default 200)")
    p.add_argument("--guardrails", action="store_true",
                   help="instead of the main run: the cost of the pii and secrets guards per 4 KB prompt and per "
                        "streamed event, measured in this process (benchkit/guardrails.py)")
    p.add_argument("--guardrails-e2e", action="store_true",
                   help="instead of the main run: two gateways on canned answers, one with the pii and secrets guards "
                        "and one without, side by side under wrk: gateway CPU per request on a 4 KB prompt and per "
                        "streamed event (benchkit/guardrails_e2e.py; with --quick: c=16, 3 s rows)")
    p.add_argument("--with-litellm", action="store_true",
                   help="with --overhead: LiteLLM proxy in the same rounds (installed once from PyPI into "
                        "~/.cache/llm-gateway-bench/litellm-venv)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.concurrency, args.ttfb_requests = 3.0, 1.0, "16", 50
        args.paced_duration, args.stream_duration, args.transports, args.no_log_row = 2.0, 3.5, "", True
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
        args.rates = [float(x) for x in args.paced_rates.split(",") if x.strip()]
    except ValueError:
        p.error("--concurrency takes integers, e.g. 1,16,64; --paced-rates numbers, e.g. 100,500")
    if not args.levels or min(args.levels) < 1 or any(r <= 0 for r in args.rates):
        p.error("--concurrency needs at least one level >= 1; --paced-rates must be > 0")
    args.transport_list = [t.strip() for t in args.transports.split(",") if t.strip()]
    bad = [t for t in args.transport_list if t not in TRANSPORTS]
    if bad:
        p.error(f"unknown transport(s) {bad}; known: {', '.join(TRANSPORTS)}")
    if (args.duration < 1 or args.warmup < 0 or args.ttfb_requests < 1 or args.workers < 1 or args.rounds < 1
            or args.streams < 1 or args.event_streams < 1 or args.stream_events < 2):
        p.error("--duration >= 1, --warmup >= 0, --ttfb-requests, --workers, --rounds, --streams, "
                "--event-streams >= 1, --stream-events >= 2")
    if args.overhead_rounds < 1 or args.overhead_requests < 1:
        p.error("--overhead-rounds and --overhead-requests >= 1")
    if sum((args.stores, args.protocols, args.overhead, args.mcp, args.guardrails, args.guardrails_e2e)) > 1:
        p.error("--stores, --protocols, --overhead, --mcp, --guardrails and --guardrails-e2e are separate runs: "
                "give one")
    if args.with_litellm and not args.overhead:
        p.error("--with-litellm goes with --overhead")
    if args.with_sink and args.fake != "nginx":
        p.error("--with-sink posts to the nginx fake's /sink: use --fake nginx")
    return args


def dispatch(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    if args.guardrails:
        return run_guardrails(args.json)
    if args.guardrails_e2e:
        return run_guardrails_e2e(args, procs, tmp)
    if args.protocols:
        return run_protocols(args, procs, tmp)
    if args.overhead:
        return run_overhead(args, procs, tmp)
    if args.mcp:
        return run_mcp(args, procs, tmp)
    return run_stores(args, procs, tmp) if args.stores else run(args, procs, tmp)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not sys.platform.startswith("linux"):
        print("scripts/bench: Linux only (reads /proc)", file=sys.stderr)
        return 2
    pin_cpus(not args.no_pin)
    if args.batch_helper_threads:
        GATEWAY_ENV["GATEWAY_BATCH_HELPER_THREADS"] = "true"
        os.environ["GATEWAY_BATCH_HELPER_THREADS"] = "true"  # the server floor the same way
    raise_fd_limit()

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    keep = False
    try:
        if not args.tracing:
            return dispatch(args, procs, tmp)
        sink = start_sink(procs)
        GATEWAY_ENV["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink}"
        status = dispatch(args, procs, tmp)
        print(f"\nTracing on: the gateways exported {sink_stats(sink)} to the OTLP sink.")
        return status
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
        if keep or args.keep_tmp:  # a run may ask to keep them (a helper that did not start)
            print(f"scripts/bench: configs and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
