"""The canned upstream answers of ``--protocols`` (the same text in each protocol's shape: OpenAI chat
completions, Anthropic Messages, Gemini generateContent; whole and streamed), the nginx that serves
them, and the gateway config that points a provider of each type at them."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from subprocess import Popen
from typing import Any

from benchkit.common import (
    ANSWER_TEXT,
    CLIENT_KEY,
    MODEL,
    UPSTREAM_KEYS,
    BenchError,
    all_healthy,
    free_port,
    wait_until,
)
from benchkit.fakes import completion_json, nginx_preamble
from benchkit.system import Processes

# A whole answer is ANSWER_TEXT; a streamed one PROTOCOL_PIECES, one text event each (nginx sends a
# stream at once: this measures translation, not pacing; the main run's paced fake does that).
PROTOCOL_PIECES = tuple(f" word{i}" for i in range(48))  # a streamed answer: 48 text events (and the rest)
PROTOCOL_STREAM_TEXT = "".join(PROTOCOL_PIECES)


def openai_sse_body() -> str:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
               for p in PROTOCOL_PIECES]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 48, "total_tokens": 53}})
    return "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events) + "data: [DONE]\n\n"


def anthropic_message_json() -> str:
    return json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
        "content": [{"type": "text", "text": ANSWER_TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 5},
    }, separators=(",", ":"))


def anthropic_sse_body() -> str:
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant",
                                              "model": "claude-bench", "content": [], "stop_reason": None,
                                              "stop_sequence": None, "usage": usage}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
          for p in PROTOCOL_PIECES),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 48}},
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)


def _gemini_answer(parts: str, last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": parts}], "role": "model"}, "index": 0}
    usage: dict[str, Any] = {"promptTokenCount": 5}
    if last:
        candidate["finishReason"] = "STOP"
        usage.update(candidatesTokenCount=5, totalTokenCount=10)
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-bench",
            "responseId": "bench"}


def gemini_json() -> str:
    return json.dumps(_gemini_answer(ANSWER_TEXT, True), separators=(",", ":"))


def gemini_sse_body() -> str:
    last = len(PROTOCOL_PIECES) - 1
    return "".join(f"data: {json.dumps(_gemini_answer(p, i == last), separators=(',', ':'))}\r\n\r\n"
                   for i, p in enumerate(PROTOCOL_PIECES))


def start_protocol_nginx(procs: Processes, nginx: str, tmp: Path) -> tuple[Popen[bytes], dict[str, int]]:
    """nginx answering each protocol's canned answers: one port per (protocol, streaming) pair
    (Gemini: one port, the method in the path says which). Returns the process and the ports."""
    root = tmp / "nginx-protocols"
    root.mkdir()
    names = ("openai", "openai-sse", "anthropic", "anthropic-sse", "gemini")
    ports = {n: free_port() for n in names}
    if len(set(ports.values())) < len(names):
        raise BenchError("free_port returned the same port twice; run again")
    # each answer is a file, served to a POST by the error_page trick (a static file refuses POST
    # with 405; error_page sends it, as a GET, to the file's internal location, answered 200)
    answers = {"openai": completion_json(), "openai-sse": openai_sse_body(), "anthropic": anthropic_message_json(),
               "anthropic-sse": anthropic_sse_body(), "gemini": gemini_json(), "gemini-sse": gemini_sse_body()}
    (root / "answers").mkdir()
    tmp.chmod(0o711)  # nginx's workers (nobody, when started as root) go through to the answers, not list
    for name, body in answers.items():
        (root / "answers" / name).write_text(body)

    def answer(where: str, name: str) -> str:
        ctype = "text/event-stream" if name.endswith("-sse") else "application/json"
        return (f"location {where} {{ error_page 405 =200 /answers/{name}; return 405; }} "
                f"location = /answers/{name} {{ internal; root {root}; default_type {ctype}; }} ")

    health = "location = /health { default_type text/plain; return 200 'ok'; }"
    servers = [f"server {{ listen 127.0.0.1:{ports[n]} backlog=4096; {answer(where, n)}{health} }}"
               for n, where in (("openai", "= /v1/chat/completions"), ("openai-sse", "= /v1/chat/completions"),
                                ("anthropic", "= /v1/messages"), ("anthropic-sse", "= /v1/messages"))]
    servers.append(f"server {{ listen 127.0.0.1:{ports['gemini']} backlog=4096; "
                   f"{answer('~ :generateContent$', 'gemini')}{answer('~ :streamGenerateContent$', 'gemini-sse')}"
                   f"{health} }}")
    conf = nginx_preamble(root) + "".join(f"    {s}\n" for s in servers) + "}\n"
    conf_path = root / "nginx.conf"
    conf_path.write_text(conf)
    with (root / "stderr.log").open("ab") as out:
        proc = procs.start("nginx", [nginx, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf_path)],
                           forks=True, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    wait_until(functools.partial(all_healthy, *ports.values()), "nginx (protocols)", 10, proc, root / "error.log")
    return proc, ports


def protocol_config(port: int, ports: dict[str, int]) -> str:
    keys = ", ".join(f'"{k}"' for k in UPSTREAM_KEYS)
    providers = [("p-openai", "openai-compatible", f"http://127.0.0.1:{ports['openai']}", "bench-openai"),
                 ("p-openai-sse", "openai-compatible", f"http://127.0.0.1:{ports['openai-sse']}", "bench-openai-sse"),
                 ("p-anthropic", "anthropic", f"http://127.0.0.1:{ports['anthropic']}", "bench-anthropic"),
                 ("p-anthropic-sse", "anthropic", f"http://127.0.0.1:{ports['anthropic-sse']}",
                  "bench-anthropic-sse"),
                 ("p-gemini", "gemini", f"http://127.0.0.1:{ports['gemini']}/v1beta", "bench-gemini"),
                 # chat only: /v1/responses is translated to chat for them
                 ("p-chat", "openai-compatible", f"http://127.0.0.1:{ports['openai']}", "bench-chat"),
                 ("p-chat-sse", "openai-compatible", f"http://127.0.0.1:{ports['openai-sse']}", "bench-chat-sse")]
    lines = [f'server: {{listen: "127.0.0.1:{port}", log_requests: false}}', "storage: {type: memory}",
             "llm_providers:"]
    for pid, kind, url, model in providers:
        lines += [f"  - id: {pid}", f"    type: {kind}", f"    base_url: {url}", f"    api_keys: [{keys}]",
                  f"    models: [{model}]"] + (["    endpoints: [chat]"] if pid.startswith("p-chat") else [])
    lines += ["api_keys:", f"  - {{id: bench, key: {CLIENT_KEY}}}"]
    return "\n".join(lines) + "\n"
