"""A chat answer as a Response object, for ``/v1/responses`` translated to chat.

Output items, in order: a ``reasoning`` item for the answer's reasoning text (``reasoning_content``,
as a ``reasoning_text`` part), a ``message`` with the answer's text, then one item per tool call:
``function_call`` (with its ``namespace`` when the tool was in one) or ``custom_tool_call`` (its
``input`` unwrapped from the one argument: ``responses_tools.py``). ``finish_reason`` ``length``
makes the response ``incomplete`` (``max_output_tokens``), ``content_filter`` and ``max_tool_rounds``
(the gateway's tool loop ran out of rounds) likewise.

A provider's signed reasoning (an Anthropic thinking block and its signature, which chat carries in
``reasoning_details``) rides in the reasoning item's ``encrypted_content`` when the client asked for it
(``include: ["reasoning.encrypted_content"]``), as OpenAI's own reasoning does; a client that sends the
item back (Codex does, with ``store: false``) gives the provider its reasoning again
(``responses_chat.py``).

Usage: ``input_tokens`` (``input_tokens_details.cached_tokens``), ``output_tokens``
(``output_tokens_details.reasoning_tokens``) and ``total_tokens`` from the chat usage; a response
always carries usage (estimated when the provider reported none), because clients read it.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson

from ...core.usage import Usage
from .responses_tools import CUSTOM_ARGUMENT, ToolMap

# finish reasons that leave a response incomplete, and why (``max_tool_rounds``: the gateway's tool
# loop stopped running the model's MCP calls: pipeline/tool_loop.py)
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter", "max_tool_rounds": "max_tool_rounds"}


def response_usage(usage: Usage) -> dict[str, Any]:
    """A Response's ``usage`` (cached and reasoning tokens are parts of the input and output)."""
    return {"input_tokens": usage.prompt_tokens, "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens}


def shell(request: dict[str, Any], response_id: str, created: int, status: str) -> dict[str, Any]:
    """A Response object without output (what ``response.created`` carries): the request's settings
    echoed, with the API's defaults for those it left out."""
    reasoning, text = request.get("reasoning"), request.get("text")
    return {"id": response_id, "object": "response", "created_at": created, "status": status,
            "model": request.get("model"), "output": [], "error": None, "incomplete_details": None,
            "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
            "metadata": request.get("metadata") or {}, "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None, **(reasoning if isinstance(reasoning, dict) else {})},
            "store": request.get("store", True), "temperature": request.get("temperature"),
            "text": {"format": {"type": "text"}, **(text if isinstance(text, dict) else {})},
            "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools") or [],
            "top_p": request.get("top_p"), "truncation": request.get("truncation", "disabled"), "usage": None}


def finished(response: dict[str, Any], finish_reason: object) -> dict[str, Any]:
    """``response`` marked completed, or incomplete for a ``finish_reason`` that cut it short."""
    reason = _INCOMPLETE.get(str(finish_reason))
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    return response


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


ENCRYPTED_PREFIX = "gw-reasoning-1:"  # an encrypted_content the gateway made (chat's reasoning_details)


def wants_encrypted(request: dict[str, Any]) -> bool:
    include = request.get("include")
    return isinstance(include, list) and "reasoning.encrypted_content" in include


def encrypted_content(details: list[dict[str, Any]]) -> str:
    """Chat's ``reasoning_details`` as a reasoning item's ``encrypted_content``."""
    return ENCRYPTED_PREFIX + base64.urlsafe_b64encode(orjson.dumps(details)).decode()


def reasoning_details(encrypted: object) -> list[dict[str, Any]] | None:
    """The ``reasoning_details`` an ``encrypted_content`` of the gateway's holds; None for any other
    (OpenAI's own, which only OpenAI reads)."""
    if not isinstance(encrypted, str) or not encrypted.startswith(ENCRYPTED_PREFIX):
        return None
    try:
        details = orjson.loads(base64.urlsafe_b64decode(encrypted[len(ENCRYPTED_PREFIX):]))
    except (binascii.Error, ValueError):
        return None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else None


def reasoning_item(item_id: str, text: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A reasoning item (its text as a ``reasoning_text`` part; ``details``: its encrypted content)."""
    item: dict[str, Any] = {"type": "reasoning", "id": item_id, "summary": [],
                            "content": [{"type": "reasoning_text", "text": text}]}
    if details:
        item["encrypted_content"] = encrypted_content(details)
    return item


def call_item(tools: ToolMap, item_id: str, call_id: str, chat_name: str, arguments: str,
              status: str = "completed") -> dict[str, Any]:
    """A chat tool call as a ``function_call`` or ``custom_tool_call`` item."""
    tool = tools.tool_of(chat_name)
    item: dict[str, Any]
    if tool.kind == "custom":
        item = {"type": "custom_tool_call", "id": "ctc_" + item_id[3:], "call_id": call_id, "name": tool.name,
                "input": custom_input(arguments) if status == "completed" else "", "status": status}
    else:
        item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": tool.name,
                "arguments": arguments, "status": status}
    if tool.namespace:
        item["namespace"] = tool.namespace
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's input: the one string argument of the function it was sent as."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    value = parsed.get(CUSTOM_ARGUMENT) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else arguments


def chat_to_response(data: dict[str, Any], usage: Usage, request: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion as the Response object for ``request``."""
    tools = ToolMap(request.get("tools"))
    response_id = "resp_" + str(data.get("id") or time.time_ns())
    suffix = response_id[5:]
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {} if isinstance(choice, dict) else {}
    output: list[dict[str, Any]] = []
    text = message.get("reasoning_content")
    details = message.get("reasoning_details") if wants_encrypted(request) else None
    details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else None
    if isinstance(text, str) and text or details:
        output.append(reasoning_item("rs_" + suffix, text if isinstance(text, str) else "", details))
    if isinstance(message.get("content"), str) and message["content"]:
        output.append(message_item("msg_" + suffix, message["content"]))
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            output.append(call_item(tools, f"fc_{suffix}_{i}", str(call.get("id") or ""),
                                    str(function.get("name") or ""), str(function.get("arguments") or "")))
    out = finished(shell(request, response_id, int(data.get("created") or time.time()), "completed"),
                   choice.get("finish_reason") if isinstance(choice, dict) else None)
    out.update(output=output, usage=response_usage(usage))
    return out
