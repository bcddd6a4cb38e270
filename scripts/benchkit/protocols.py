"""``--protocols``: one gateway, one nginx with canned answers in each protocol's shape, and the same
question from wrk as an OpenAI chat request, an Anthropic Messages request, an OpenAI Responses
request or a Google generateContent request: what translating between the dialects and the upstream
protocols costs over the OpenAI pass-through (OpenAI chat to Anthropic Messages and Gemini
generateContent; Anthropic Messages, Responses and generateContent to OpenAI chat; Anthropic's and
Gemini's own pass-through), as the gateway's CPU per request (and per stream, and per event relayed), all
rows in one run, taking turns; and each stream relay alone."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from benchkit.common import (
    ANSWER_TEXT,
    CHAT_PATH,
    GATEWAY_PIN,
    HEADERS,
    REPO,
    BenchError,
    free_port,
    http_call,
    log,
    log_tail,
    request_body,
)
from benchkit.dialect_requests import GOOGLE_KEY, dialect_events, gemini_request, responses_request
from benchkit.dialect_rows import MESSAGES_PATH, dialect_relay_cpu_us, messages_body, messages_events
from benchkit.gateway_process import Gateway, gateway_log_problems, gateway_run, gateway_workdir, spawn_gateway
from benchkit.protocol_answers import (
    PROTOCOL_PIECES,
    PROTOCOL_STREAM_TEXT,
    anthropic_sse_body,
    gemini_sse_body,
    openai_sse_body,
    protocol_config,
    start_protocol_nginx,
)
from benchkit.report import fmt_us
from benchkit.system import Processes
from benchkit.tools import ensure_tools
from benchkit.wrk import WrkResult, describe, run_wrk, write_lua, wrk_problems

# (client dialect, upstream protocol, row label, model, stream); the first of each kind is the reference
PROTOCOL_ROWS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("openai", "openai", "openai pass-through", "bench-openai", False),
    ("openai", "anthropic", "anthropic adapter", "bench-anthropic", False),
    ("openai", "gemini", "gemini adapter", "bench-gemini", False),
    ("anthropic", "openai", "anthropic dialect to openai", "bench-openai", False),
    ("anthropic", "anthropic", "anthropic dialect pass-through", "bench-anthropic", False),
    ("responses", "openai", "responses to openai chat", "bench-chat", False),
    ("gemini", "openai", "gemini dialect to openai", "bench-openai", False),
    ("gemini", "gemini", "gemini dialect pass-through", "bench-gemini", False),
    ("openai", "openai", "openai pass-through, stream", "bench-openai-sse", True),
    ("openai", "anthropic", "anthropic adapter, stream", "bench-anthropic-sse", True),
    ("openai", "gemini", "gemini adapter, stream", "bench-gemini", True),
    ("anthropic", "openai", "anthropic dialect to openai, stream", "bench-openai-sse", True),
    ("anthropic", "anthropic", "anthropic dialect pass-through, stream", "bench-anthropic-sse", True),
    ("responses", "openai", "responses to openai chat, stream", "bench-chat-sse", True),
    ("gemini", "openai", "gemini dialect to openai, stream", "bench-openai-sse", True),
    ("gemini", "gemini", "gemini dialect pass-through, stream", "bench-gemini", True),
)
PROTOCOL_LIMIT = 1.20  # translation costs at most 20% over the pass-through
# dialect, protocol, label, stream, events per stream, wrk script
ProtocolRow = tuple[str, str, str, bool, int, Path]


def protocol_gateway(args: argparse.Namespace, procs: Processes, tmp: Path, ports: dict[str, int]) -> Gateway:
    work = tmp / "gateway-protocols"
    port = free_port()
    env = gateway_workdir(work, protocol_config(port, ports), port, 1, sys.executable)
    if args.main_transport:
        env["GATEWAY_HTTP_TRANSPORT"] = args.main_transport
    proc, log_path = spawn_gateway(procs, sys.executable, work, env, port)
    time.sleep(1.0)
    return Gateway(port, proc, log_path, args.main_transport or "default")


def protocol_events(gw: Gateway, model: str, stream: bool) -> int:
    """Check one answer through the gateway (the canned text back, in OpenAI's shape); for a stream,
    return how many SSE events the gateway wrote to the client ([DONE] included)."""
    status, headers, data = http_call(gw.port, "POST", CHAT_PATH, request_body(stream, model), HEADERS)
    problem = f"status {status}" if status != 200 else ""
    if not problem and stream:
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in data.decode().split("\n") if line.startswith("data: {")
                       and json.loads(line[6:]).get("choices"))
        if text != PROTOCOL_STREAM_TEXT or b"data: [DONE]" not in data:
            problem = f"streamed text {text!r}"
    elif not problem:
        answer = json.loads(data)
        if answer["choices"][0]["message"]["content"] != ANSWER_TEXT or not answer.get("usage"):
            problem = "unexpected answer"
    if problem:
        raise BenchError(f"protocol sanity check '{model}' (stream={stream}) failed: {problem}\n"
                         f"body: {data[:1000]!r}{log_tail(gw.log_path)}")
    return data.count(b"data: ") if stream else 0


def run_protocols(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    """``--protocols``: the rows of PROTOCOL_ROWS through one gateway, wrk c = the highest
    --concurrency level, --rounds times in turns; each row's CPU per request is its lowest round."""
    tools = ensure_tools("nginx")
    nginx_proc, ports = start_protocol_nginx(procs, tools["nginx"], tmp)
    gw = protocol_gateway(args, procs, tmp, ports)
    conns = max(args.levels)
    rows: list[ProtocolRow] = []
    for dialect, protocol, label, model, stream in PROTOCOL_ROWS:
        name = "proto-" + label.replace(", ", "-").replace(" ", "_")
        if dialect == "anthropic":
            events = messages_events(gw, model, stream)
            lua = write_lua(tmp, name, messages_body(stream, model), MESSAGES_PATH)
        elif dialect in ("responses", "gemini"):
            events = dialect_events(gw, dialect, model, stream)
            path, body = (responses_request if dialect == "responses" else gemini_request)(stream, model)
            lua = write_lua(tmp, name, body, path, GOOGLE_KEY if dialect == "gemini" else "Authorization")
        else:
            events = protocol_events(gw, model, stream)
            lua = write_lua(tmp, name, request_body(stream, model))
        rows.append((dialect, protocol, label, stream, events, lua))
        if args.warmup > 0:
            gateway_run(gw, "during the warm-up", run_wrk, tools["wrk"], lua, gw.port, conns, args.warmup,
                        "gateway", label, procs)
    problems: list[str] = []
    rounds = protocol_rounds(args, procs, tools["wrk"], gw, rows, conns, problems)
    log_lines = gateway_log_problems(gw)
    if log_lines:
        problems.append(f"gateway log has {len(log_lines)} error line(s), first: {log_lines[0][:300]}")
    procs.stop(gw.proc)
    procs.stop(nginx_proc)
    result = protocol_results(rows, rounds)
    relays = relay_cpu_us() | dialect_relay_cpu_us()
    print(render_protocol_rows(result, conns, args.rounds, problems, relays), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"protocols": result, "relay_cpu_us_per_stream": relays, "conns": conns,
                                         "rounds": args.rounds, "pinned": bool(GATEWAY_PIN), "problems": problems},
                                        indent=2))
    return 0


def protocol_rounds(args: argparse.Namespace, procs: Processes, wrk: str, gw: Gateway, rows: list[ProtocolRow],
                    conns: int, problems: list[str]) -> dict[str, list[WrkResult]]:
    """Every row's wrk runs, the rows taking turns --rounds times."""
    rounds: dict[str, list[WrkResult]] = {label: [] for _, _, label, _, _, _ in rows}
    for round_no in range(1, args.rounds + 1):
        for _, _, label, _, _, lua in rows:
            r = gateway_run(gw, "during a protocol row", run_wrk, wrk, lua, gw.port, conns, args.duration,
                            "gateway", label, procs, gw.proc.pid)
            log(f"round {round_no}, {label}: {describe(r)}")
            problems += wrk_problems([r])
            rounds[label].append(r)
    return rounds


def relay_cpu_us(repeats: int = 5, streams: int = 1000) -> dict[str, float]:
    """Each protocol's stream relay alone, in this process (no server, no sockets): CPU µs to turn
    the canned stream (as one read) into the client's OpenAI chunks, the lowest of ``repeats``."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from gateway.core.call import CHAT, Call
    from gateway.providers.registry import adapter_for

    body = json.loads(request_body(True, "bench"))
    call = Call(CHAT, CHAT_PATH.removeprefix("/v1"), body, "bench", stream=True)
    canned = {"openai": openai_sse_body(), "anthropic": anthropic_sse_body(), "gemini": gemini_sse_body()}
    out = {}
    for protocol, text in canned.items():
        adapter, data = adapter_for(protocol), text.encode()
        best = math.inf
        for _ in range(repeats):
            t0 = time.process_time()
            for _ in range(streams):
                adapter.stream_relay(call).feed(data)
            best = min(best, (time.process_time() - t0) * 1e6 / streams)
        out[protocol] = best
    return out


def protocol_results(rows: list[ProtocolRow], rounds: dict[str, list[WrkResult]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base: dict[bool, float] = {}
    for dialect, protocol, label, stream, events, _ in rows:
        cpus = [r.server_cpu_us_per_req for r in rounds[label] if r.server_cpu_us_per_req is not None]
        best = min(cpus) if cpus else None
        if dialect == protocol == "openai" and best is not None:
            base[stream] = best
        out.append({"dialect": dialect, "protocol": protocol, "row": label, "stream": stream,
                    "events_per_stream": events,
                    "cpu_us": best, "cpu_us_rounds": [round(c, 1) for c in cpus],
                    "cpu_us_per_event": best / events if best is not None and events else None,
                    "rps": max((r.rps for r in rounds[label]), default=0.0),
                    "p50_ms": min((r.p50_ms for r in rounds[label]), default=0.0)})
    for row in out:
        ref = base.get(row["stream"])
        row["vs_openai"] = row["cpu_us"] / ref if row["cpu_us"] is not None and ref else None
    return out


def render_protocol_rows(result: list[dict[str, Any]], conns: int, rounds: int, problems: list[str],
                         relays: dict[str, float] | None = None) -> str:
    lines = [f"## Protocols: translation cost over the pass-through. wrk c={conns}, the same OpenAI chat request, "
             "canned upstream answers (nginx) in each protocol's shape; gateway CPU per request (per stream), "
             f"lowest of {rounds} rounds",
             "", "| row | gateway CPU µs/req (/stream) | rounds | events/stream | CPU µs/event | req/s | p50 ms "
             "| vs openai |", "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for row in result:
        ratio = row["vs_openai"]
        lines.append(f"| {row['row']} | {fmt_us(row['cpu_us'])} "
                     f"| {', '.join(f'{c:.0f}' for c in row['cpu_us_rounds'])} "
                     f"| {row['events_per_stream'] or '-'} | {fmt_us(row['cpu_us_per_event'])} | {row['rps']:.0f} "
                     f"| {row['p50_ms']:.2f} | {'-' if ratio is None else f'{ratio:.2f}x'} |")
        if not row["dialect"] == row["protocol"] == "openai" and ratio is not None:
            verdict = "PASS" if ratio <= PROTOCOL_LIMIT else "FAIL"
            verdicts.append(f"{verdict}: {row['row']}: {ratio:.2f}x the pass-through's CPU (limit "
                            f"{PROTOCOL_LIMIT:.2f}x)")
    if relays:
        ref = relays.get("openai")
        lines += ["", f"Stream relay alone (in this process, the canned stream of {len(PROTOCOL_PIECES)} text events "
                  "as one read, lowest of 5 x 1,000; the Anthropic dialect's with its translation): " + ", ".join(
                      f"{p} {us:.1f} µs/stream" + (f" ({us / ref:.2f}x)" if ref and p != "openai" else "")
                      for p, us in relays.items())]
    lines += ["", *verdicts]
    if problems:
        lines += ["", "Problems: " + "; ".join(problems)]
    return "\n".join(lines)
