"""OpenAI-shape SSE events the pipeline makes itself: error events, and a whole answer as a stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def error_event(message: str, type_: str = "provider_error", code: str = "stream_interrupted",
                details: Mapping[str, str] | None = None) -> bytes:
    """The last event of a stream that broke off (or that a guardrail stopped: ``details`` are then
    its name and the entity found): clients see an error, not a clean end."""
    error = {"message": message, "type": type_, "code": code, **(details or {})}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


def completion_as_sse(data: dict[str, Any], with_usage: bool) -> bytes:
    """A whole completion (from an upstream that ignored ``stream: true``) as the events of a stream.

    One chunk carries every choice's whole message as its delta (and finish reason), then a
    usage-only chunk when the answer had usage and ``with_usage``, then ``[DONE]``: what the
    client would have assembled from the stream.
    """
    base: dict[str, Any] = {key: data[key] for key in ("id", "created", "model", "system_fingerprint")
                            if key in data}
    chat = data.get("object") != "text_completion"
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    choices = [_choice_as_delta(choice, i, chat) for i, choice in enumerate(data.get("choices") or ())
               if isinstance(choice, dict)]
    events: list[dict[str, Any]] = [{**base, "choices": choices}]
    if with_usage and isinstance(data.get("usage"), dict):
        events.append({**base, "choices": [], "usage": data["usage"]})
    return b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events) + DONE


def _choice_as_delta(choice: dict[str, Any], position: int, chat: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"index": choice.get("index", position), "finish_reason": choice.get("finish_reason")}
    if "logprobs" in choice:
        out["logprobs"] = choice["logprobs"]
    if not chat:
        out["text"] = choice.get("text") or ""
        return out
    message = choice.get("message")
    delta = {k: v for k, v in message.items() if v is not None} if isinstance(message, dict) else {}
    calls = delta.get("tool_calls")
    if isinstance(calls, list):  # stream deltas number their tool calls
        delta["tool_calls"] = [{"index": i, **call} if isinstance(call, dict) else call
                               for i, call in enumerate(calls)]
    out["delta"] = delta
    return out
