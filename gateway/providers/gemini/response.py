"""Gemini ``GenerateContentResponse`` → OpenAI chat completions (and legacy text completions), with usage.

Text parts are joined; ``thought`` parts (asked for with ``includeThoughts``) become the message's
``reasoning_content`` (where OpenAI-compatible servers put reasoning text); ``functionCall`` parts become
``tool_calls`` with generated ids (``ids.py``). ``finishReason`` maps to OpenAI's (``STOP`` with calls →
``tool_calls``; the safety family → ``content_filter``); a prompt blocked outright (``promptFeedback.blockReason``, no
candidates) is one ``content_filter`` choice whose ``refusal`` says why. Usage: ``promptTokenCount`` in,
``candidatesTokenCount`` + ``thoughtsTokenCount`` out (thinking is billed as output).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...core.tokens import estimate_prompt_tokens, estimate_tokens
from ...core.usage import Answer, Usage
from .ids import new_call_id

_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})


def finish_reason(raw: Any, called: bool) -> str | None:
    """Gemini's ``finishReason`` in OpenAI's words (None while the candidate is still going)."""
    if not isinstance(raw, str) or not raw or raw == "FINISH_REASON_UNSPECIFIED":
        return None
    if raw in _FILTERED:
        return "content_filter"
    if raw == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def block_reason(data: dict[str, Any]) -> str | None:
    """Why the whole prompt was blocked (``promptFeedback.blockReason``), when no candidate came back."""
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return str(reason) if reason and not data.get("candidates") else None


def refusal(reason: str) -> str:
    return f"The provider blocked this prompt ({reason})."


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return 0
    return int(min(value, 1e12))


def usage_of(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    prompt = _count(meta.get("promptTokenCount")) + _count(meta.get("toolUsePromptTokenCount"))
    thoughts = _count(meta.get("thoughtsTokenCount"))
    return Usage(prompt, _count(meta.get("candidatesTokenCount")) + thoughts,
                 cache_read_tokens=min(prompt, _count(meta.get("cachedContentTokenCount"))), reasoning_tokens=thoughts)


def usage_dict(meta: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object (with the reasoning and cached token details Gemini reports)."""
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.total_tokens}
    thoughts = _count(meta.get("thoughtsTokenCount"))
    if thoughts:
        out["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    cached = _count(meta.get("cachedContentTokenCount"))
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


@dataclass(slots=True)
class Reading:
    """What one candidate (or one streamed piece of it) says."""

    index: int
    text: str = ""
    reasoning: str = ""  # the text of thought parts
    calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI tool calls (no stream index)
    finish: Any = None  # Gemini's raw finishReason


def read_candidate(candidate: dict[str, Any], position: int) -> Reading:
    index = candidate.get("index")
    reading = Reading(index if isinstance(index, int) else position, finish=candidate.get("finishReason"))
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if type(parts) is list and len(parts) == 1:  # the usual streamed piece: one text part, read at once
        part = parts[0]
        if type(part) is dict and type(text := part.get("text")) is str and "functionCall" not in part \
                and part.get("thought") is not True:
            reading.text = text
            return reading
    texts, thoughts = [], []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("thought") is True:
            if isinstance(part.get("text"), str):
                thoughts.append(part["text"])
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            reading.calls.append(tool_call(call, part.get("thoughtSignature")))
    reading.text = "".join(texts)
    reading.reasoning = "".join(thoughts)
    return reading


def tool_call(call: dict[str, Any], signature: Any) -> dict[str, Any]:
    args = call.get("args")
    return {"id": new_call_id(signature if isinstance(signature, str) else None), "type": "function",
            "function": {"name": str(call.get("name") or ""), "arguments": orjson.dumps(args or {}).decode()}}


def candidates_of(data: dict[str, Any]) -> list[Reading]:
    raw = data.get("candidates")
    return [read_candidate(c, i) for i, c in enumerate(raw) if isinstance(c, dict)] if isinstance(raw, list) else []


def new_id(prefix: str, data: dict[str, Any]) -> str:
    response_id = data.get("responseId")
    return prefix + (str(response_id) if isinstance(response_id, str) and response_id else os.urandom(12).hex())


def estimated_prompt(body: dict[str, Any]) -> int:
    """A local count of the prompt, for an answer that reported no usage."""
    prompt = body.get("prompt")
    return estimate_tokens(prompt) if isinstance(prompt, str) else estimate_prompt_tokens(body.get("messages"))


def parse_answer(raw: bytes, requested_model: str, request_body: dict[str, Any], chat: bool) -> Answer:
    """A whole Gemini answer → OpenAI's shape; ValueError for what is not a GenerateContentResponse."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not ("candidates" in data or "promptFeedback" in data):
        raise ValueError("the upstream answer is not a Gemini GenerateContentResponse")
    blocked = block_reason(data)
    readings = candidates_of(data)
    if chat:
        choices = [_message_choice(r) for r in readings]
        if blocked:
            choices = [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": refusal(blocked)},
                        "logprobs": None, "finish_reason": "content_filter"}]
    else:
        choices = [{"index": r.index, "text": r.text, "logprobs": None,
                    "finish_reason": finish_reason(r.finish, False) or "stop"} for r in readings]
        if blocked:
            choices = [{"index": 0, "text": "", "logprobs": None, "finish_reason": "content_filter"}]
    meta = data.get("usageMetadata")
    usage = usage_of(meta)
    if usage is None:
        usage = Usage(estimated_prompt(request_body), estimate_tokens("".join(r.text for r in readings)), exact=False)
    answer = {"id": new_id("chatcmpl-" if chat else "cmpl-", data),
              "object": "chat.completion" if chat else "text_completion",
              "created": int(time.time()), "model": requested_model, "choices": choices,
              "usage": usage_dict(meta if isinstance(meta, dict) else {}, usage)}
    return Answer(answer, usage)


def _message_choice(reading: Reading) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reading.text or (None if reading.calls else "")}
    if reading.reasoning:
        message["reasoning_content"] = reading.reasoning
    if reading.calls:
        message["tool_calls"] = reading.calls
    return {"index": reading.index, "message": message, "logprobs": None,
            "finish_reason": finish_reason(reading.finish, bool(reading.calls)) or "stop"}
