"""The Anthropic-dialect rows of ``--protocols``: the same question as Anthropic's Messages request
(``POST /v1/messages``), answered by the OpenAI-shaped canned upstream (translated both ways) or by
the Anthropic-shaped one (passed through); its answer checked, and its stream translation timed alone."""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

from benchkit.common import ANSWER_TEXT, HEADERS, REPO, BenchError, http_call, log_tail
from benchkit.gateway_process import Gateway
from benchkit.protocol_answers import PROTOCOL_STREAM_TEXT, anthropic_sse_body, openai_sse_body

MESSAGES_PATH = "/v1/messages"


def messages_body(stream: bool, model: str) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "hello there"}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def messages_events(gw: Gateway, model: str, stream: bool) -> int:
    """Check one Messages answer through the gateway (the canned text back, in Anthropic's shape); for a
    stream, return how many SSE events the gateway wrote to the client."""
    status, _, data = http_call(gw.port, "POST", MESSAGES_PATH, messages_body(stream, model), HEADERS)
    problem = f"status {status}" if status != 200 else ""
    if not problem and stream:
        events = [json.loads(line[6:]) for line in data.decode().split("\n") if line.startswith("data: {")]
        text = "".join(e["delta"].get("text") or "" for e in events if e.get("type") == "content_block_delta")
        if text != PROTOCOL_STREAM_TEXT or events[-1].get("type") != "message_stop":
            problem = f"streamed text {text!r}"
    elif not problem:
        answer = json.loads(data)
        if answer["content"][0]["text"] != ANSWER_TEXT or not answer.get("usage"):
            problem = "unexpected answer"
    if problem:
        raise BenchError(f"protocol sanity check '{model}' (Messages, stream={stream}) failed: {problem}\n"
                         f"body: {data[:1000]!r}{log_tail(gw.log_path)}")
    return data.count(b"data: ") if stream else 0


def dialect_relay_cpu_us(repeats: int = 5, streams: int = 1000) -> dict[str, float]:
    """CPU µs per stream, in this process, for the canned stream (as one read) through what the
    Anthropic dialect runs: the OpenAI relay then the translator into Anthropic's events; an Anthropic
    upstream's relay then the pass-through (each read's events joined, as the pipeline hands them on)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from gateway.api.anthropic.parse import parse_messages
    from gateway.api.anthropic.stream import MessageEvents, NativeEvents
    from gateway.providers.registry import adapter_for

    call = parse_messages(json.loads(messages_body(True, "bench")))
    openai, anthropic = adapter_for("openai"), adapter_for("anthropic")
    openai_data, anthropic_data = openai_sse_body().encode(), anthropic_sse_body().encode()

    def translated() -> None:
        MessageEvents("bench", 9).feed(b"".join(openai.stream_relay(call).feed(openai_data)))

    def passed() -> None:
        NativeEvents().feed(b"".join(anthropic.stream_relay(call).feed(anthropic_data)))

    out = {}
    for name, run in (("anthropic dialect to openai", translated), ("anthropic dialect pass-through", passed)):
        best = math.inf
        for _ in range(repeats):
            t0 = time.process_time()
            for _ in range(streams):
                run()
            best = min(best, (time.process_time() - t0) * 1e6 / streams)
        out[name] = best
    return out
