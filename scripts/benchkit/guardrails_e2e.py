"""``--guardrails-e2e``: the guard stage's cost end to end, side by side. Two gateways on the same
canned upstream (nginx, the OpenAI answers of ``--protocols``), one with the ``pii`` and ``secrets``
guards (both masking, on input and output, so every text is scanned to its end) and one without,
the same requests from wrk (c = the highest ``--concurrency`` level; ``--quick``: 16), the rows
taking turns ``--rounds`` times. For each row the gateway's CPU per request (per stream), the
lowest of its rounds; the guards' cost is the difference:

- per request, a chat request whose user message is a 4 KB prompt (prose; prose with 8 matches:
  emails, phones, a card, an IBAN, an IP address, a key), answered whole;
- per streamed event, a short prompt answered as a stream of ``PROTOCOL_PIECES`` text events (and
  the rest), every event through the output scanner.

``--guardrails`` measures the same engine in this process, without a server; this adds what the
stage costs on the request path (finding the texts, the verdict, rewriting the body, the events).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchkit.common import CHAT_PATH, GATEWAY_PIN, HEADERS, BenchError, free_port, http_call, log, log_tail
from benchkit.gateway_process import Gateway, gateway_log_problems, gateway_run, gateway_workdir, spawn_gateway
from benchkit.guardrails import PROMPTS, TARGET_US, _fill
from benchkit.protocol_answers import PROTOCOL_STREAM_TEXT, protocol_config, start_protocol_nginx
from benchkit.report import fmt_us
from benchkit.system import Processes, cpu_busy_percent
from benchkit.tools import ensure_tools
from benchkit.wrk import WrkResult, describe, run_wrk, write_lua, wrk_problems

GUARDS = """guardrails:
  default: [pii, secrets]
  guards:
    - {name: pii, type: pii, on: both, action: mask, restore: true}
    - {name: secrets, type: secrets, on: both, action: mask}
"""
ROWS = (("4 KB prose", "prose", False), ("4 KB prose + 8 matches", "prose + 8 matches", False),
        ("stream, short prompt", "", True))


def _body(prompt: str, stream: bool) -> bytes:
    piece, once = PROMPTS[prompt] if prompt else ("hello there", "")
    text = _fill(piece, once) if prompt else piece
    body: dict[str, Any] = {"model": "bench-openai-sse" if stream else "bench-openai",
                            "messages": [{"role": "system", "content": "You are terse."},
                                         {"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def _gateway(procs: Processes, tmp: Path, ports: dict[str, int], guarded: bool) -> Gateway:
    work = tmp / ("gateway-guarded" if guarded else "gateway-unguarded")
    port = free_port()
    config = protocol_config(port, ports) + (GUARDS if guarded else "")
    env = gateway_workdir(work, config, port, 1, sys.executable)
    proc, log_path = spawn_gateway(procs, sys.executable, work, env, port)
    return Gateway(port, proc, log_path, "guarded" if guarded else "unguarded")


def _events(gw: Gateway, body: bytes, stream: bool) -> int:
    """One answer checked (the canned text back); the events a stream wrote ([DONE] included)."""
    status, _, data = http_call(gw.port, "POST", CHAT_PATH, body, HEADERS)
    problem = f"status {status}" if status != 200 else ""
    if not problem and stream:
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in data.decode().split("\n") if line.startswith("data: {")
                       and json.loads(line[6:]).get("choices"))
        problem = "" if text == PROTOCOL_STREAM_TEXT else f"streamed text {text[:200]!r}"
    if problem:
        raise BenchError(f"sanity check ({gw.transport}, stream={stream}) failed: {problem}\n"
                         f"body: {data[:500]!r}{log_tail(gw.log_path)}")
    return data.count(b"data: ") if stream else 1


def run_guardrails_e2e(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    tools = ensure_tools("nginx")
    busy = cpu_busy_percent()
    nginx_proc, ports = start_protocol_nginx(procs, tools["nginx"], tmp)
    gateways = {guarded: _gateway(procs, tmp, ports, guarded) for guarded in (False, True)}
    conns = max(args.levels)
    scripts: dict[str, Path] = {}
    events = 0
    for label, prompt, stream in ROWS:
        body = _body(prompt, stream)
        scripts[label] = write_lua(tmp, "guard-" + str(len(scripts)), body)
        for gw in gateways.values():
            events = _events(gw, body, stream) if stream else events
            if args.warmup > 0:
                gateway_run(gw, "during the warm-up", run_wrk, tools["wrk"], scripts[label], gw.port, conns,
                            args.warmup, gw.transport, label, procs)
    results: dict[tuple[str, bool], list[WrkResult]] = {(label, g): [] for label, _, _ in ROWS for g in (False, True)}
    problems: list[str] = []
    for round_no in range(1, args.rounds + 1):
        for label, _, _ in ROWS:
            for guarded, gw in gateways.items():
                r = gateway_run(gw, "during a guardrails row", run_wrk, tools["wrk"], scripts[label], gw.port, conns,
                                args.duration, gw.transport, label, procs, gw.proc.pid)
                log(f"round {round_no}, {label}, {gw.transport}: {describe(r)}")
                problems += wrk_problems([r])
                results[(label, guarded)].append(r)
    for gw in gateways.values():
        problems += [f"{gw.transport} gateway log: {line[:300]}" for line in gateway_log_problems(gw)[:1]]
        procs.stop(gw.proc)
    procs.stop(nginx_proc)
    figures = _figures(results, events)
    print(render(figures, conns, args.rounds, busy, problems), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"guardrails_e2e": figures, "conns": conns, "rounds": args.rounds,
                                         "events_per_stream": events, "busy_percent": busy,
                                         "pinned": bool(GATEWAY_PIN), "problems": problems}, indent=2))
    return 0


def _figures(results: dict[tuple[str, bool], list[WrkResult]], events: int) -> list[dict[str, Any]]:
    out = []
    for label, _, stream in ROWS:
        best: dict[bool, float | None] = {}
        for guarded in (False, True):
            cpus = [r.server_cpu_us_per_req for r in results[(label, guarded)] if r.server_cpu_us_per_req is not None]
            best[guarded] = min(cpus) if cpus else None
        on, off = best[True], best[False]
        added = on - off if on is not None and off is not None else None
        out.append({"row": label, "stream": stream, "unguarded_us": off, "guarded_us": on,
                    "added_us": added, "events": events if stream else None,
                    "added_us_per_event": added / events if added is not None and stream and events else None,
                    "rps": {("guarded" if g else "unguarded"): max((r.rps for r in results[(label, g)]), default=0.0)
                            for g in (False, True)}})
    return out


def render(figures: list[dict[str, Any]], conns: int, rounds: int, busy: float, problems: list[str]) -> str:
    lines = [f"## Guardrails end to end: pii + secrets (both masking, input and output) on vs off. wrk c={conns}, "
             f"canned OpenAI answers (nginx); gateway CPU per request (per stream), lowest of {rounds} rounds", "",
             "| row | unguarded µs | guarded µs | added µs | added µs/event | req/s off / on |",
             "|---|---:|---:|---:|---:|---|"]
    for row in figures:
        rps = row["rps"]
        lines.append(f"| {row['row']} | {fmt_us(row['unguarded_us'])} | {fmt_us(row['guarded_us'])} "
                     f"| {fmt_us(row['added_us'])} | {fmt_us(row['added_us_per_event'])} "
                     f"| {rps['unguarded']:.0f} / {rps['guarded']:.0f} |")
    prompts = [row["added_us"] for row in figures if not row["stream"] and row["added_us"] is not None]
    if prompts:
        worst = max(prompts)
        lines += ["", f"{'PASS' if worst < TARGET_US else 'FAIL'}: a 4 KB prompt adds at most {worst:.0f} µs of "
                  f"gateway CPU end to end (target < {TARGET_US:.0f} µs; wrk's variation between rounds is tens of µs)"]
    if busy > 20:
        lines.append(f"\nThe machine was {busy:.0f}% busy before the run: the figures are inflated by the load.")
    if problems:
        lines += ["", "Problems: " + "; ".join(problems)]
    return "\n".join(lines)
