"""What a span may say about a request's content, in the GenAI semantic conventions' shapes.

Only read when ``observability.capture_content`` is true (prompts, answers and tool arguments
are user data): ``input_messages`` and ``output_messages`` give the JSON of
``gen_ai.input.messages`` / ``gen_ai.output.messages`` (``[{"role", "parts": [{"type": "text",
"content"}], "finish_reason"}]``), bounded: each text at most ``MAX_TEXT`` characters and the
whole at most ``MAX_JSON`` (the oldest messages dropped first). ``finish_reasons`` and
``stream_finish_reasons`` are not content and are always read. Answers come in OpenAI's shape,
or, passed through untranslated, Anthropic's or Gemini's; all three are read.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_TEXT = 4096  # characters of one text part
MAX_JSON = 16384  # characters of one attribute
MAX_REASONS = 16
TRUNCATED = "…[truncated]"
_FINISH = re.compile(rb'"(?:finish_reason|stop_reason|finishReason)"\s*:\s*"([A-Za-z_]{1,40})"')


def _list(value: Any) -> list[Any]:
    """``value`` when it is a list (an answer's ``choices``, …), else nothing: answers are the
    upstream's, and a malformed one must not break the request that carries it."""
    return value if isinstance(value, list) else []


def _index(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1024 else default


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + TRUNCATED


def _parts(content: Any) -> list[dict[str, Any]]:
    """OpenAI content (a string, or a list of parts) as semconv parts; non-text parts by type only."""
    if isinstance(content, str):
        return [{"type": "text", "content": _text(content)}]
    parts: list[dict[str, Any]] = []
    for part in _list(content):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append({"type": "text", "content": _text(part["text"])})
        elif isinstance(part, dict):
            parts.append({"type": str(part.get("type", "unknown"))[:40]})
    return parts


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    parts = []
    for call in _list(message.get("tool_calls")):
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            function = call["function"]
            parts.append({"type": "tool_call", "id": str(call.get("id", ""))[:80],
                          "name": str(function.get("name", ""))[:120],
                          "arguments": _text(str(function.get("arguments", "")))})
    return parts


def _bounded(messages: list[dict[str, Any]]) -> str:
    """The JSON of ``messages``, the oldest dropped until it fits ``MAX_JSON``."""
    while True:
        text = orjson.dumps(messages).decode()
        if len(text) <= MAX_JSON or len(messages) <= 1:
            return text if len(text) <= MAX_JSON else text[:MAX_JSON]
        messages = messages[1:]


def input_messages(body: dict[str, Any]) -> str | None:
    """The request's messages (chat) or prompt (completions), as ``gen_ai.input.messages``."""
    messages = body.get("messages")
    out: list[dict[str, Any]] = []
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                parts = _parts(message.get("content")) + _tool_calls(message)
                if message.get("role") == "tool":
                    parts = [{"type": "tool_call_response", "id": str(message.get("tool_call_id", ""))[:80],
                              "result": _text(str(message.get("content", "")))}]
                out.append({"role": str(message.get("role", "user"))[:20], "parts": parts})
    elif isinstance(body.get("prompt"), str):
        out.append({"role": "user", "parts": _parts(body["prompt"])})
    return _bounded(out) if out else None


def _openai_output(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for choice in _list(data.get("choices")):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        parts: list[dict[str, Any]] = []
        if isinstance(message, dict):
            parts = _parts(message.get("content")) + _tool_calls(message)
        elif isinstance(choice.get("text"), str):  # completions
            parts = _parts(choice["text"])
        out.append({"role": "assistant", "parts": parts, "finish_reason": str(choice.get("finish_reason") or "")})
    return out


def _native_output(data: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(data.get("content"), list):  # Anthropic Messages
        return [{"role": "assistant", "parts": _parts(data["content"]),
                 "finish_reason": str(data.get("stop_reason") or "")}]
    out = []
    for candidate in _list(data.get("candidates")):  # Gemini generateContent
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = _parts(content.get("parts")) if isinstance(content, dict) else []
            out.append({"role": "assistant", "parts": parts, "finish_reason": str(candidate.get("finishReason") or "")})
    return out


def output_messages(data: dict[str, Any]) -> str | None:
    """A whole answer's choices as ``gen_ai.output.messages``."""
    out = _openai_output(data) if "choices" in data else _native_output(data)
    return _bounded(out) if out else None


def streamed_output(texts: dict[int, list[str]], reasons: list[str]) -> str | None:
    """A streamed answer's text per choice (collected by ``stream_texts``) as ``gen_ai.output.messages``."""
    if not texts:
        return None
    out = []
    for index in sorted(texts):
        reason = reasons[index] if index < len(reasons) else ""
        out.append({"role": "assistant", "parts": [{"type": "text", "content": _text("".join(texts[index]))}],
                    "finish_reason": reason})
    return _bounded(out)


def finish_reasons(data: dict[str, Any]) -> list[str]:
    """Why the model stopped, one reason per choice (OpenAI, Anthropic or Gemini answer)."""
    if isinstance(data.get("stop_reason"), str):
        return [data["stop_reason"][:40]]
    key = "finish_reason" if "choices" in data else "finishReason"
    items = _list(data.get("choices") if "choices" in data else data.get("candidates"))
    return [item[key][:40] for item in items if isinstance(item, dict) and isinstance(item.get(key), str)]


def stream_finish_reasons(chunk: bytes) -> list[str]:
    """The finish reasons a piece of a stream names (any of the three shapes), without parsing it."""
    if b"inish" not in chunk and b"stop_reason" not in chunk:
        return []
    return [m.decode() for m in _FINISH.findall(chunk)]


def stream_texts(chunk: bytes, texts: dict[int, list[str]], budget: int) -> int:
    """Add the text deltas of the events in ``chunk`` to ``texts`` (per choice); at most ``budget``
    more characters are kept. What is left of the budget."""
    for line in chunk.split(b"\n"):
        if budget <= 0:
            break
        if not line.startswith(b"data:"):
            continue
        try:
            event = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        for index, text in _deltas(event):
            kept = text[:budget]
            texts.setdefault(index, []).append(kept)
            budget -= len(kept)
    return budget


def _deltas(event: Any) -> list[tuple[int, str]]:
    if not isinstance(event, dict):
        return []
    found = []
    for choice in _list(event.get("choices")):  # OpenAI
        if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
            content = choice["delta"].get("content")
            if isinstance(content, str):
                found.append((_index(choice.get("index"), 0), content))
    delta = event.get("delta")  # Anthropic content_block_delta
    if isinstance(delta, dict) and isinstance(delta.get("text"), str):
        found.append((0, delta["text"]))
    for n, candidate in enumerate(_list(event.get("candidates"))):  # Gemini
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in _list(content.get("parts")) if isinstance(content, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append((_index(candidate.get("index"), n), part["text"]))
    return found
