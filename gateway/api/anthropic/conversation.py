"""An Anthropic conversation (``system`` and ``messages``) as OpenAI chat messages.

- ``system`` (a string or text blocks) becomes the first system message; a ``role: "system"``
  message inside ``messages`` (Anthropic's mid-conversation system message) becomes a system
  message at the same position, as OpenAI's chat takes them anywhere;
- user turns: ``text``; ``image`` (base64 or URL) as ``image_url`` parts; ``document`` (base64:
  a ``file`` part, as OpenAI takes PDFs; plain text or content blocks: text); ``tool_result``
  blocks as ``tool`` messages, placed first (OpenAI wants them right after the assistant's
  calls), their images in a user message after them, as a tool message carries text only;
- assistant turns: their text, and ``tool_use`` blocks as ``tool_calls``.

What OpenAI's shape has no place for (``cache_control``, citations, thinking blocks replayed from
earlier turns, server-tool blocks, images and documents held by Anthropic's Files API or given by
URL where only base64 is taken) is left out and named in ``Notes``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import InvalidRequest

_ROLES = ("user", "assistant", "system")
Message = dict[str, Any]
Part = dict[str, Any]


class Notes:
    """What a translation left out, each named once (``drop``), in the order first met."""

    __slots__ = ("dropped",)

    def __init__(self) -> None:
        self.dropped: dict[str, None] = {}

    def drop(self, name: str) -> None:
        self.dropped[name] = None

    def cache_control(self, block: dict[str, Any]) -> None:
        if "cache_control" in block:
            self.dropped["cache_control"] = None


def conversation(body: dict[str, Any], notes: Notes) -> list[Message]:
    """The chat messages of an Anthropic body; a 400 for what Anthropic itself would refuse."""
    out: list[Message] = []
    system = body.get("system")
    if system:
        text = system_text(system, "system", notes)
        if text:
            out.append({"role": "system", "content": text})
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(items):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES:
            raise InvalidRequest(f"{where} must be an object with role 'user', 'assistant' or 'system'.", param=where)
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise InvalidRequest(f"{where}.content must be a string or an array of content blocks.",
                                 param=f"{where}.content")
        for key in message:
            if key not in ("role", "content"):
                notes.drop(f"messages[].{key}")
        if role == "system":
            out.append({"role": "system", "content": system_text(content, where, notes)})
        elif isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "assistant":
            out.extend(_assistant(content, where, notes))
        else:
            out.extend(_user(content, where, notes))
    return out


def system_text(value: Any, where: str, notes: Notes) -> str:
    """A system prompt (a string, or text blocks joined by newlines)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a string or an array of text blocks.", param=where)
    texts = []
    for j, block in enumerate(value):
        kind = block_type(block, f"{where}[{j}]" if where == "system" else f"{where}.content[{j}]")
        notes.cache_control(block)
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        else:
            notes.drop(f"{kind} blocks in system messages")
    return "\n".join(texts)


def block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequest(f"{where} must be an object with a 'type'.", param=where)
    kind: str = block["type"]
    return kind


def _user(blocks: list[Any], where: str, notes: Notes) -> list[Message]:
    results: list[Message] = []  # tool messages first
    returned: list[Part] = []  # images the tools returned
    parts: list[Part] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = block_type(block, at)
        notes.cache_control(block)
        if kind == "tool_result":
            message, images = _tool_result(block, at, notes)
            results.append(message)
            returned += images
        else:
            parts += content_parts(block, kind, at, notes)
    parts = returned + parts
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        results.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return results


def content_parts(block: dict[str, Any], kind: str, where: str, notes: Notes) -> list[Part]:
    """A user content block as OpenAI content parts (none for one OpenAI has no place for)."""
    if kind == "text":
        if "citations" in block:
            notes.drop("citations")
        return [{"type": "text", "text": str(block.get("text") or "")}]
    if kind == "image":
        return _image(block, where, notes)
    if kind == "document":
        return _document(block, where, notes)
    notes.drop(f"{kind} blocks")
    return []


def _image(block: dict[str, Any], where: str, notes: Notes) -> list[Part]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    elif isinstance(source, dict) and kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    elif kind == "file":
        notes.drop("images from the Files API")
        return []
    else:
        raise InvalidRequest(f"{where}.source must be a base64, url or file image source.", param=f"{where}.source")
    return [{"type": "image_url", "image_url": {"url": url}}]


def _document(block: dict[str, Any], where: str, notes: Notes) -> list[Part]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    for name in ("context", "citations"):
        if name in block:
            notes.drop(f"document.{name}")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source must be a document source.", param=f"{where}.source")
    if kind == "base64":
        title = block.get("title")
        name = title if isinstance(title, str) and title else "document.pdf"
        data = f"data:{source.get('media_type') or 'application/pdf'};base64,{source.get('data') or ''}"
        return [{"type": "file", "file": {"filename": name, "file_data": data}}]
    if kind == "text":
        return [{"type": "text", "text": str(source.get("data") or "")}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        blocks = inner if isinstance(inner, list) else []
        return [part for j, b in enumerate(blocks)
                for part in content_parts(b, block_type(b, f"{where}.source.content[{j}]"), where, notes)]
    notes.drop(f"documents by {kind}")
    return []


def _tool_result(block: dict[str, Any], where: str, notes: Notes) -> tuple[Message, list[Part]]:
    """A ``tool`` message (the result's text) and the images the tool returned."""
    if block.get("is_error") is not None:
        notes.drop("tool_result.is_error")
    content = block.get("content")
    images: list[Part] = []
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        texts = []
        for j, inner in enumerate(content):
            at = f"{where}.content[{j}]"
            for part in content_parts(inner, block_type(inner, at), at, notes):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
        text = "\n".join(texts)
    else:
        raise InvalidRequest(f"{where}.content must be a string or an array of content blocks.",
                             param=f"{where}.content")
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""), "content": text}, images


def _assistant(blocks: list[Any], where: str, notes: Notes) -> list[Message]:
    """The assistant's turn (none when nothing of it is left: a turn of thinking blocks only)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block_type(block, f"{where}.content[{j}]")
        notes.cache_control(block)
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": str(block.get("id") or f"toolu_{j}"), "type": "function",
                          "function": {"name": str(block.get("name") or ""), "arguments": arguments}})
        else:
            notes.drop(f"{kind} blocks")
    if not texts and not calls:
        return []
    message: Message = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]
