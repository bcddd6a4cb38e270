"""OpenAI message content -> Anthropic content blocks (text, images, documents, tool use and results,
and thinking carried back in ``reasoning_details``)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from ...errors import InvalidRequest

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.DOTALL)


def text_of(content: Any, where: str) -> str:
    """The text of a system/developer message (a string, or text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text") or "") for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    raise InvalidRequest(f"{where}.content must be a string or an array of parts.", param=where)


def user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A user message's content as blocks: text, images (https or data: URLs), PDF files."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts.", param=where)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}.content[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _part(part: Any, where: str) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.text must be a string.", param=where)
        return {"type": "text", "text": text} if text else None
    if kind == "image_url":
        return image_block(part.get("image_url"), where)
    if kind == "file":
        return _document_block(part.get("file"), where)
    raise InvalidRequest(f"{where}: content parts of type '{kind}' cannot be sent to an Anthropic provider "
                         "(text, image_url and PDF files can).", param=where)


def image_block(image: Any, where: str) -> dict[str, Any]:
    """``{"url": "https://…"}`` -> a URL image source; ``{"url": "data:image/png;base64,…"}`` -> base64."""
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest(f"{where}.image_url.url must be a string.", param=where)
    match = _DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match.group("type"), "data": match.group("data")}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{where}.image_url.url must be an http(s) URL or a base64 data: URL.", param=where)


def _document_block(file: Any, where: str) -> dict[str, Any]:
    """A PDF as a base64 document; a text file (``text/*``) as a text document, as Anthropic takes them."""
    data = file.get("file_data") if isinstance(file, dict) else None
    match = _DATA_URL.match(data) if isinstance(data, str) else None
    if match is None:
        raise InvalidRequest(f"{where}.file: only inline files (file_data as a base64 data: URL) can be sent "
                             "to an Anthropic provider.", param=where)
    kind = match.group("type")
    source = {"type": "base64", "media_type": kind, "data": match.group("data")}
    if kind.startswith("text/"):
        try:
            text = base64.b64decode(match.group("data"), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest(f"{where}.file.file_data is not base64 UTF-8 text.", param=where) from None
        source = {"type": "text", "media_type": "text/plain", "data": text}
    block: dict[str, Any] = {"type": "document", "source": source}
    name = file.get("filename") if isinstance(file, dict) else None
    if isinstance(name, str) and name:
        block["title"] = name
    return block


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The signed thinking an earlier answer carried in ``reasoning_details`` (``response.py``), as the
    blocks Anthropic wants back first in the assistant's turn; unsigned reasoning cannot go back."""
    details = message.get("reasoning_details")
    blocks: list[dict[str, Any]] = []
    for detail in details if isinstance(details, list) else ():
        kind = detail.get("type") if isinstance(detail, dict) else None
        if kind == "reasoning.text" and isinstance(detail.get("signature"), str) and detail["signature"]:
            text = detail.get("text")
            if not isinstance(text, str):  # streamed: the text came as reasoning_content
                text = message.get("reasoning_content")
            blocks.append({"type": "thinking", "thinking": text if isinstance(text, str) else "",
                           "signature": detail["signature"]})
        elif kind == "reasoning.encrypted" and isinstance(detail.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    return blocks


def assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """An assistant turn: its thinking (when carried back), its text, then its tool calls as ``tool_use`` blocks."""
    content = message.get("content")
    blocks: list[dict[str, Any]] = thinking_blocks(message)
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            text = part.get("text") or part.get("refusal") if isinstance(part, dict) else None
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
    elif content is not None:
        raise InvalidRequest(f"{where}.content must be a string or an array of parts.", param=where)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array.", param=where)
    for j, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where} must be a function call with a name.", param=where)
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{where}.function.arguments is not valid JSON.", param=where) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object.", param=where)
    return {"type": "tool_use", "id": str(call.get("id") or ""), "name": function["name"], "input": parsed}


def tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``role: tool`` message -> a ``tool_result`` block (sent in a user turn)."""
    tool_id = message.get("tool_call_id")
    if not isinstance(tool_id, str) or not tool_id:
        raise InvalidRequest(f"{where}.tool_call_id is required for a tool message.", param=where)
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id}
    if isinstance(content, list):
        block["content"] = user_blocks(content, where)
    elif content:
        block["content"] = str(content)
    return block
