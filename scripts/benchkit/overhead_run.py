"""``--overhead``: the sequential added latency of the gateway (and with ``--with-litellm``, of LiteLLM
proxy on the same machine in the same run), against the same fake upstream; a Markdown table and,
with --json, the rounds and the summary."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from benchkit.common import GATEWAY_PIN, BenchError, log, request_body
from benchkit.gateway_process import gateway_run
from benchkit.litellm_proxy import ensure_litellm, start_litellm
from benchkit.overhead import interleaved_rounds, overhead_table, round_table, summarize
from benchkit.session import Bench, start_fakes
from benchkit.system import Processes, cpu_busy_percent
from benchkit.tools import ensure_tools, git_commit
from benchkit.wrk import write_lua

LITELLM_SETUP = (" LiteLLM proxy runs with its default settings (uvicorn, one worker, its access log on), "
                 "one model_list entry (openai/ at the fake's api_base), the master key, no database.")
LITELLM_BAR = 10.0  # the gateway's added latency must be under 1/LITELLM_BAR of LiteLLM proxy's


def run_overhead(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    tools = ensure_tools(args.fake)
    busy = cpu_busy_percent()
    if busy > 20:
        log(f"warning: the machine is already {busy:.0f}% busy before the run; the numbers will be noisy")
    litellm_command, litellm_note = (ensure_litellm(sys.executable) if args.with_litellm else (None, ""))
    if args.with_litellm and litellm_command is None:
        log(f"LiteLLM proxy will not be measured: {litellm_note}")
    fake = start_fakes(args, procs, tmp, tools)
    b = Bench(args, procs, tmp, sys.executable, tools["wrk"], write_lua(tmp, "chat", request_body(False)), fake)
    gw = b.start(args.main_transport, "overhead")
    ports, labels = {"direct": fake.json_port, "gateway": gw.port}, {"direct": "Direct", "gateway": "Gateway"}
    if litellm_command is not None:
        try:
            proxy = start_litellm(procs, litellm_command, tmp, fake.json_port)
            ports["litellm"], labels["litellm"] = proxy.port, f"LiteLLM proxy {proxy.version}"
        except BenchError as exc:
            log(f"LiteLLM proxy did not start: {exc}")
            litellm_note = f"it did not start: {str(exc).splitlines()[0]}; its log is in the kept directory"
            args.keep_tmp = True
    log(f"overhead: {args.overhead_rounds} rounds x {args.overhead_requests} sequential requests per target "
        f"({', '.join(ports)})")
    targets = gateway_run(gw, "during the overhead rounds", interleaved_rounds, ports, args.overhead_rounds,
                          args.overhead_requests, args.overhead_requests)
    problems: list[str] = []
    b.stop(gw, problems)
    summary = summarize(targets)
    ratio = litellm_ratio(summary)
    print(render_overhead(args, fake.version, busy, summary, labels, ratio, litellm_note, problems), flush=True)
    if args.json:
        write_overhead_json(args, busy, summary, ratio, litellm_note, problems)
    return 0


def litellm_ratio(summary: dict[str, Any]) -> float | None:
    """LiteLLM proxy's added latency over the gateway's (None without LiteLLM or a positive gateway figure)."""
    if "litellm" not in summary or summary["gateway"]["added_ms"] <= 0:
        return None
    return float(summary["litellm"]["added_ms"] / summary["gateway"]["added_ms"])


def render_overhead(args: argparse.Namespace, fake: str, busy: float, summary: dict[str, Any], labels: dict[str, str],
                    ratio: float | None, litellm_note: str, problems: list[str]) -> str:
    pin = "Gateways pinned to CPU 0, client and fake upstream to CPU 1" if GATEWAY_PIN else "No CPU pinning"
    order = ", ".join(labels.values())
    lines = ["## Sequential overhead (interleaved rounds)", "",
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}, commit `{git_commit()}`. {args.overhead_rounds} rounds; "
             f"in each, {args.overhead_requests} sequential non-streaming chat completions per target on one "
             f"keep-alive connection, the targets taking turns ({order}; the order reversed every other round), "
             f"after {args.overhead_requests} warm-up requests each. Same fake upstream for all: {fake}. {pin}. "
             f"CPU busy before the run: {busy:.0f}%.{LITELLM_SETUP if 'litellm' in labels else ''}", "",
             *overhead_table(summary, labels)]
    if ratio is not None:
        verdict = "PASS" if ratio > LITELLM_BAR else "FAIL"
        lines += ["", f"LiteLLM proxy's added latency / the gateway's: {ratio:.1f}x. {verdict}: the gateway's "
                      f"sequential overhead is {'under' if ratio > LITELLM_BAR else 'not under'} 1/{LITELLM_BAR:g} "
                      "of LiteLLM proxy's."]
    elif args.with_litellm:
        lines += ["", f"LiteLLM proxy: not measured ({litellm_note or 'no positive gateway figure to divide by'})."]
    lines += ["", "Per round (the median of each round's requests; added = that round's difference from direct):",
              "", *round_table(summary, labels)]
    if problems:
        lines += ["", "Problems seen:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines)


def write_overhead_json(args: argparse.Namespace, busy: float, summary: dict[str, Any], ratio: float | None,
                        litellm_note: str, problems: list[str]) -> None:
    data = {"overhead": {"rounds": args.overhead_rounds, "requests_per_round": args.overhead_requests,
                         "targets": summary, "litellm_added_over_gateway_added": ratio,
                         "litellm_note": litellm_note or None},
            "meta": {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(),
                     "pinned": bool(GATEWAY_PIN), "cpu_busy_before_run_percent": round(busy, 1)},
            "problems": problems}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    log(f"wrote {args.json}")
