"""``--dialects``: what translating between dialects costs, per request and per streamed event, next to
the OpenAI → OpenAI path in the same run: one gateway, one nginx with canned answers in each
provider protocol's shape (``protocol_answers.py``), and for each row of ``DIALECT_ROWS`` the same
one-line question in the client's dialect (OpenAI chat, OpenAI Responses, Google generateContent, …)
to a provider of the row's protocol, whole and streamed. wrk at the highest ``--concurrency`` level,
the rows taking turns ``--rounds`` times; a row's gateway CPU per request (per stream, for streams)
is its lowest round, per event that over the upstream's events in a stream. A pair is one entry of
``DIALECT_ROWS``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit.common import CHAT_PATH, CLIENT_KEY, GATEWAY_PIN, UPSTREAM_KEYS, BenchError, free_port, http_call, log
from benchkit.common import log_tail as tail
from benchkit.gateway_process import Gateway, gateway_log_problems, gateway_run, gateway_workdir, spawn_gateway
from benchkit.protocol_answers import PROTOCOL_PIECES, start_protocol_nginx
from benchkit.report import fmt_us
from benchkit.system import Processes
from benchkit.tools import ensure_tools
from benchkit.wrk import WrkResult, describe, run_wrk, write_lua, wrk_problems

DIALECT_LIMIT = 1.20  # a translation costs at most 20% over OpenAI → OpenAI
QUESTION = "hello there"
UPSTREAM_EVENTS = len(PROTOCOL_PIECES) + 3  # a canned stream's events: the pieces, the first, the last, usage
# (provider id, type, nginx port name, model, endpoints): the providers the rows call
PROVIDERS = (("p-openai", "openai-compatible", "openai", "bench-openai", None),
             ("p-openai-sse", "openai-compatible", "openai-sse", "bench-openai-sse", None),
             ("p-chat", "openai-compatible", "openai", "bench-chat", "[chat]"),
             ("p-chat-sse", "openai-compatible", "openai-sse", "bench-chat-sse", "[chat]"),
             ("p-anthropic", "anthropic", "anthropic", "bench-anthropic", None),
             ("p-anthropic-sse", "anthropic", "anthropic-sse", "bench-anthropic-sse", None),
             ("p-gemini", "gemini", "gemini", "bench-gemini", None))


@dataclass(frozen=True)
class DialectRow:
    pair: str  # "<client dialect> → <upstream protocol>"; "openai → openai" is the reference
    stream: bool
    path: str  # the client's path (the model may be in it)
    body: dict[str, Any]
    key_header: str = "Authorization"  # where the client sends its key
    done: bytes = b"data: [DONE]"  # what a stream's last event holds in this dialect

    @property
    def label(self) -> str:
        return self.pair + (", stream" if self.stream else "")


def _chat(model: str, stream: bool) -> DialectRow:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    upstream = "gemini" if "gemini" in model else "anthropic" if "anthropic" in model else "openai"
    return DialectRow(f"openai → {upstream}", stream, CHAT_PATH, {**body, "stream": True} if stream else body)


def _responses(model: str, stream: bool) -> DialectRow:
    body: dict[str, Any] = {"model": model, "input": QUESTION, "stream": stream}
    return DialectRow("responses → openai chat", stream, "/v1/responses", body, done=b"response.completed")


def _gemini(model: str, stream: bool) -> DialectRow:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}]}
    upstream = "gemini" if "gemini" in model else "openai"
    return DialectRow(f"gemini → {upstream}", stream, f"/v1beta/models/{model}:{method}", body, "x-goog-api-key",
                      b'"finishReason"')


DIALECT_ROWS: tuple[DialectRow, ...] = (
    _chat("bench-openai", False), _responses("bench-chat", False), _gemini("bench-openai", False),
    _chat("bench-gemini", False), _gemini("bench-gemini", False),
    _chat("bench-openai-sse", True), _responses("bench-chat-sse", True), _gemini("bench-openai-sse", True),
    _chat("bench-gemini", True), _gemini("bench-gemini", True),
)


def dialect_config(port: int, ports: dict[str, int]) -> str:
    keys = ", ".join(f'"{k}"' for k in UPSTREAM_KEYS)
    lines = [f'server: {{listen: "127.0.0.1:{port}", log_requests: false}}', "storage: {type: memory}",
             "llm_providers:"]
    for pid, kind, port_name, model, endpoints in PROVIDERS:
        url = f"http://127.0.0.1:{ports[port_name]}" + ("/v1beta" if kind == "gemini" else "")
        lines += [f"  - id: {pid}", f"    type: {kind}", f"    base_url: {url}", f"    api_keys: [{keys}]",
                  f"    models: [{model}]"] + ([f"    endpoints: {endpoints}"] if endpoints else [])
    lines += ["api_keys:", f"  - {{id: bench, key: {CLIENT_KEY}}}"]
    return "\n".join(lines) + "\n"


def check_row(gw: Gateway, row: DialectRow) -> None:
    """One answer through the gateway: 200, the canned answer's words in it, a stream's last event."""
    value = f"Bearer {CLIENT_KEY}" if row.key_header == "Authorization" else CLIENT_KEY
    headers = {"Content-Type": "application/json", row.key_header: value}
    status, _, data = http_call(gw.port, "POST", row.path, json.dumps(row.body).encode(), headers)
    words = PROTOCOL_PIECES[-1].strip().encode() if row.stream else b"Hello from the fake upstream"
    if status != 200 or words not in data or (row.stream and row.done not in data):
        raise BenchError(f"dialect sanity check '{row.label}' failed: status {status}\nbody: {data[:1500]!r}"
                         f"{tail(gw.log_path)}")


def run_dialects(args: argparse.Namespace, procs: Processes, tmp: Path) -> int:
    tools = ensure_tools("nginx")
    nginx_proc, ports = start_protocol_nginx(procs, tools["nginx"], tmp)
    work, port = tmp / "gateway-dialects", free_port()
    env = gateway_workdir(work, dialect_config(port, ports), port, 1, sys.executable)
    if args.main_transport:
        env["GATEWAY_HTTP_TRANSPORT"] = args.main_transport
    proc, log_path = spawn_gateway(procs, sys.executable, work, env, port)
    time.sleep(1.0)
    gw = Gateway(port, proc, log_path, args.main_transport or "default")
    conns = max(args.levels)
    scripts = {}
    for row in DIALECT_ROWS:
        check_row(gw, row)
        name = "dialect-" + row.label.replace(" → ", "-to-").replace(", ", "-").replace(" ", "_")
        scripts[row.label] = write_lua(tmp, name, json.dumps(row.body).encode(), row.path, row.key_header)
        if args.warmup > 0:
            gateway_run(gw, "during the warm-up", run_wrk, tools["wrk"], scripts[row.label], gw.port, conns,
                        args.warmup, "gateway", row.label, procs)
    problems: list[str] = []
    rounds: dict[str, list[WrkResult]] = {row.label: [] for row in DIALECT_ROWS}
    for round_no in range(1, args.rounds + 1):
        for row in DIALECT_ROWS:
            r = gateway_run(gw, "during a dialect row", run_wrk, tools["wrk"], scripts[row.label], gw.port, conns,
                            args.duration, "gateway", row.label, procs, gw.proc.pid)
            log(f"round {round_no}, {row.label}: {describe(r)}")
            problems += wrk_problems([r])
            rounds[row.label].append(r)
    lines = gateway_log_problems(gw)
    if lines:
        problems.append(f"gateway log has {len(lines)} error line(s), first: {lines[0][:300]}")
    procs.stop(gw.proc)
    procs.stop(nginx_proc)
    result = dialect_results(rounds)
    print(render_dialects(result, conns, args.rounds, problems), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"dialects": result, "conns": conns, "rounds": args.rounds,
                                         "pinned": bool(GATEWAY_PIN), "problems": problems}, indent=2))
    return 0


def dialect_results(rounds: dict[str, list[WrkResult]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base: dict[bool, float] = {}
    for row in DIALECT_ROWS:
        cpus = [r.server_cpu_us_per_req for r in rounds[row.label] if r.server_cpu_us_per_req is not None]
        best = min(cpus) if cpus else None
        if row.pair == "openai → openai" and best is not None:
            base[row.stream] = best
        out.append({"pair": row.pair, "row": row.label, "stream": row.stream, "cpu_us": best,
                    "cpu_us_rounds": [round(c, 1) for c in cpus],
                    "cpu_us_per_event": best / UPSTREAM_EVENTS if best is not None and row.stream else None,
                    "rps": max((r.rps for r in rounds[row.label]), default=0.0),
                    "p50_ms": min((r.p50_ms for r in rounds[row.label]), default=0.0)})
    for item in out:
        ref = base.get(item["stream"])
        item["vs_openai"] = item["cpu_us"] / ref if item["cpu_us"] is not None and ref else None
    return out


def render_dialects(result: list[dict[str, Any]], conns: int, rounds: int, problems: list[str]) -> str:
    lines = [f"## Dialects: translation cost next to OpenAI → OpenAI. wrk c={conns}, one question in each client "
             f"dialect, canned upstream answers (nginx; a stream is {UPSTREAM_EVENTS} upstream events); gateway "
             f"CPU per request (per stream), lowest of {rounds} rounds",
             "", "| pair | gateway CPU µs/req (/stream) | rounds | CPU µs/upstream event | req/s | p50 ms "
             "| vs openai |", "|---|---|---|---|---|---|---|"]
    verdicts = []
    for row in result:
        ratio = row["vs_openai"]
        lines.append(f"| {row['row']} | {fmt_us(row['cpu_us'])} | {', '.join(f'{c:.0f}' for c in row['cpu_us_rounds'])}"
                     f" | {fmt_us(row['cpu_us_per_event'])} | {row['rps']:.0f} | {row['p50_ms']:.2f} "
                     f"| {'-' if ratio is None else f'{ratio:.2f}x'} |")
        if row["pair"] != "openai → openai" and ratio is not None:
            verdict = "PASS" if ratio <= DIALECT_LIMIT else "FAIL"
            verdicts.append(f"{verdict}: {row['row']}: {ratio:.2f}x OpenAI → OpenAI's CPU (limit {DIALECT_LIMIT:.2f}x)")
    lines += ["", *verdicts]
    if problems:
        lines += ["", "Problems: " + "; ".join(problems)]
    return "\n".join(lines)
