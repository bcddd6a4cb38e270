"""Anthropic Messages requests, checked and translated into an OpenAI chat body.

``system`` becomes a system message; ``text`` and ``image`` blocks (base64 or URL) become content
parts; ``tool_use`` blocks become the assistant's ``tool_calls`` and ``tool_result`` blocks
``tool`` messages; ``tools``, ``tool_choice``, ``stop_sequences``, ``temperature``, ``top_p``
and ``metadata.user_id`` map to their OpenAI fields. ``thinking`` blocks from earlier turns are
left out; other blocks (documents, server tools) are a 400 naming them, as no OpenAI field
carries them.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...core.call import CHAT, Call
from ...errors import InvalidRequest
from ..openai.parse import model_of

ANTHROPIC = "anthropic"  # the dialect's name: equal to the Anthropic providers' protocol (pass-through)
MESSAGES = "messages"  # the endpoint's name in the access log
_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def parse_messages(body: dict[str, Any]) -> Call:
    """The checked body as a ``Call`` (OpenAI body, Anthropic body kept as ``native_body``); 400 if wrong."""
    model = model_of(body)
    max_tokens = body.get("max_tokens")
    if not _positive_int(max_tokens):
        raise InvalidRequest("'max_tokens' is required and must be a positive integer.", param="max_tokens")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    chat = chat_body(body, model)
    chat["max_tokens"] = max_tokens
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    # wants_usage: the usage chunk is what message_delta's usage is made of
    return Call(CHAT, "/chat/completions", chat, model, stream=stream is True, wants_usage=True, dialect=ANTHROPIC,
                native_body=body)


def chat_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The OpenAI chat body for an Anthropic body (without ``max_tokens`` and streaming)."""
    out: dict[str, Any] = {"model": model, "messages": messages(body)}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("'stop_sequences' must be an array of strings.", param="stop_sequences")
        if stop:
            out["stop"] = stop
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools:
        out["tools"] = _tools(tools)
    choice = body.get("tool_choice")
    if choice is not None:
        out.update(_tool_choice(choice))
    return out


def messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _text_of(system, "system")})
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(items):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages[{i}] must be an object with role 'user' or 'assistant'.",
                                 param=f"messages[{i}]")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif not isinstance(content, list):
            raise InvalidRequest(f"messages[{i}].content must be a string or an array of content blocks.",
                                 param=f"messages[{i}].content")
        elif role == "assistant":
            out.append(_assistant(content, f"messages[{i}]"))
        else:
            out.extend(_user(content, f"messages[{i}]"))
    return out


def _user(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as ``tool`` messages (first, as OpenAI wants), then its other parts."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = _block_type(block, f"{where}.content[{j}]")
        if kind == "tool_result":
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""),
                            "content": _text_of(block.get("content") or "", f"{where}.content[{j}].content")})
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image":
            parts.append(_image(block, f"{where}.content[{j}]"))
        elif kind not in _SKIPPED_BLOCKS:
            raise _unsupported(kind, f"{where}.content[{j}]")
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        results.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return results


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = _block_type(block, f"{where}.content[{j}]")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": str(block.get("id") or f"toolu_{j}"), "type": "function",
                          "function": {"name": str(block.get("name") or ""), "arguments": arguments}})
        elif kind not in _SKIPPED_BLOCKS:
            raise _unsupported(kind, f"{where}.content[{j}]")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{where} must be an object with a 'type'.", param=where)
    kind: str = block["type"]
    return kind


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    elif isinstance(source, dict) and kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest(f"{where}.source must be a base64 or url image source.", param=f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _text_of(value: Any, where: str) -> str:
    """A string, or the text of an array of text blocks (``system``, a tool result's content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(b.get("text") or "") for b in value if isinstance(b, dict) and b.get("type") == "text")
    raise InvalidRequest(f"{where} must be a string or an array of text blocks.", param=where)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"tools[{i}] must be an object with a 'name'.", param=f"tools[{i}]")
        if tool.get("type") not in (None, "custom") or not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(f"tools[{i}] ('{tool['name']}'): only client tools with an 'input_schema' can be "
                                 "sent to this model's provider.", param=f"tools[{i}]")
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        out: dict[str, Any] = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    elif kind in ("auto", "any", "none"):
        out = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[kind]}
    else:
        raise InvalidRequest("'tool_choice' must be {type: auto|any|none} or {type: tool, name}.",
                             param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _unsupported(kind: str, where: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: content blocks of type '{kind}' cannot be sent to this model's provider.",
                          param=where)
