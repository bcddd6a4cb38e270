"""The Responses and Google-dialect rows of ``--protocols``: the same question as an OpenAI Responses
request (``POST /v1/responses`` to a provider without Responses: translated to chat and back) or as
Google's generateContent (to the OpenAI-shaped canned upstream: translated both ways; to the
Gemini-shaped one: passed through); the answer checked, its events counted."""

from __future__ import annotations

import json
from typing import Any

from benchkit.common import CLIENT_KEY, BenchError, http_call, log_tail
from benchkit.gateway_process import Gateway
from benchkit.protocol_answers import PROTOCOL_PIECES

RESPONSES_PATH = "/v1/responses"
GOOGLE_KEY = "x-goog-api-key"
QUESTION = "hello there"


def responses_request(stream: bool, model: str) -> tuple[str, bytes]:
    return RESPONSES_PATH, json.dumps({"model": model, "input": QUESTION, "stream": stream},
                                      separators=(",", ":")).encode()


def gemini_request(stream: bool, model: str) -> tuple[str, bytes]:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}]}
    return f"/v1beta/models/{model}:{method}", json.dumps(body, separators=(",", ":")).encode()


def dialect_events(gw: Gateway, dialect: str, model: str, stream: bool) -> int:
    """Check one answer in ``dialect`` (``responses``, ``gemini``) through the gateway: 200, the canned
    answer's words, a stream's last event (``response.completed``; a ``finishReason``). For a stream,
    how many SSE events the gateway wrote to the client."""
    path, body = (responses_request if dialect == "responses" else gemini_request)(stream, model)
    headers: dict[str, Any] = {"Content-Type": "application/json"}
    headers.update({GOOGLE_KEY: CLIENT_KEY} if dialect == "gemini" else {"Authorization": f"Bearer {CLIENT_KEY}"})
    status, _, data = http_call(gw.port, "POST", path, body, headers)
    words = PROTOCOL_PIECES[-1].strip().encode() if stream else b"Hello from the fake upstream"
    last = b"response.completed" if dialect == "responses" else b'"finishReason"'
    if status != 200 or words not in data or (stream and last not in data):
        raise BenchError(f"protocol sanity check '{model}' ({dialect}, stream={stream}) failed: status {status}\n"
                         f"body: {data[:1500]!r}{log_tail(gw.log_path)}")
    return data.count(b"data: ") if stream else 0
