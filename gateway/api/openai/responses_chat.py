"""``/v1/responses`` for providers without it: a Responses request as a chat request, and the
chat answer (whole or streamed) as a Response object or ``response.*`` events.

Pure translation, used where a route's providers cannot serve responses natively (Anthropic,
Gemini, a provider configured ``endpoints: [chat]``). What needs the provider's stored state
(``previous_response_id``) or its own tools (web search, file search) cannot be translated and
is a 400 naming the provider.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from ...core.sse import SSEDecoder
from ...errors import InvalidRequest

_ROLES = frozenset({"user", "assistant", "system", "developer"})
_COPIED = ("temperature", "top_p", "user", "parallel_tool_calls", "metadata", "store")


def responses_to_chat(body: dict[str, Any], providers: str) -> dict[str, Any]:
    """The chat request for a Responses request (``providers`` names who serves it, for errors)."""
    if body.get("previous_response_id"):
        raise InvalidRequest(f"'previous_response_id' needs a provider that stores responses; {providers} "
                             "serves /v1/responses by translating it to chat. Send the whole conversation "
                             "in 'input' instead.", param="previous_response_id")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(_input_messages(body.get("input")))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    chat.update({k: body[k] for k in _COPIED if body.get(k) is not None and k not in ("metadata", "store")})
    if isinstance(body.get("max_output_tokens"), int):
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = [_tool(t, providers) for t in body["tools"]]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(text_format, dict) and text_format.get("type") in ("json_object", "json_schema"):
        chat["response_format"] = _response_format(text_format)
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _input_messages(value: object) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'input' must be a string or a non-empty array of items.", param="input")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object.", param=f"input[{i}]")
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in _ROLES:
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append({"role": role, "content": _content(item.get("content"), i)})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else orjson.dumps(output).decode()})
        else:
            raise InvalidRequest(f"input[{i}] of type '{kind}' cannot be translated to chat.", param=f"input[{i}]")
    return messages


def _content(value: object, i: int) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"input[{i}].content must be a string or an array.", param=f"input[{i}].content")
    parts: list[dict[str, Any]] = []
    for part in value:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(f"input[{i}] holds a '{kind}' part, which cannot be translated to chat.",
                                 param=f"input[{i}].content")
    return parts


def _tool(tool: object, providers: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else tool
        raise InvalidRequest(f"The '{kind}' tool runs on OpenAI's servers; {providers} serves /v1/responses "
                             "through chat, which has function tools only.", param="tools")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
    return {"type": "function", "function": function}


def _tool_choice(choice: object) -> object:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": schema}


def _usage(usage: object) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


def _shell(request: dict[str, Any], response_id: str, created: int, status: str) -> dict[str, Any]:
    """A Response object without output (what ``response.created`` carries)."""
    return {"id": response_id, "object": "response", "created_at": created, "status": status,
            "model": request.get("model"), "output": [], "error": None, "incomplete_details": None,
            "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
            "metadata": request.get("metadata") or {}, "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": None, "temperature": request.get("temperature"),
            "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools") or [],
            "top_p": request.get("top_p"), "text": request.get("text") or {"format": {"type": "text"}},
            "usage": None}


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def _call_item(call: dict[str, Any], index: int, response_id: str) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "function_call", "id": f"fc_{response_id[5:]}_{index}", "call_id": call.get("id"),
            "name": function.get("name"), "arguments": function.get("arguments") or "", "status": "completed"}


def chat_to_response(data: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion as the Response object for ``request``."""
    response_id = "resp_" + str(data.get("id") or time.time_ns())
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(_message_item("msg_" + response_id[5:], message["content"]))
    output += [_call_item(c, i, response_id) for i, c in enumerate(message.get("tool_calls") or ())]
    out = _shell(request, response_id, int(data.get("created") or time.time()), "completed")
    if choice.get("finish_reason") == "length":
        out["status"], out["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
    out.update(output=output, usage=_usage(data.get("usage")))
    return out


class ChatToResponseEvents:
    """Turns a chat stream (OpenAI SSE events) into ``response.*`` events, as the Responses API sends."""

    def __init__(self, request: dict[str, Any]):
        self.request = request
        self.response_id = f"resp_{time.time_ns():x}"
        self.created = int(time.time())
        self.sequence = 0
        self.text: list[str] = []
        self.message_open = False
        self.calls: dict[int, dict[str, Any]] = {}  # tool calls by their chat index
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self) -> list[bytes]:
        shell = _shell(self.request, self.response_id, self.created, "in_progress")
        return [self._event("response.created", response=shell), self._event("response.in_progress", response=shell)]

    def feed(self, payload: bytes) -> list[bytes]:
        """The data of one chat SSE event -> the Responses events it makes."""
        if payload == b"[DONE]":
            return self.finish_events()
        chunk = orjson.loads(payload)
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            return [self._event("error", code=error.get("code"), message=error.get("message"), param=None)]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        out: list[bytes] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or ():
                out += self._call_delta(call)
            self.finish = choice.get("finish_reason") or self.finish
        return out

    def _text_delta(self, text: str) -> list[bytes]:
        out = []
        item_id = "msg_" + self.response_id[5:]
        if not self.message_open:
            self.message_open = True
            item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
            out.append(self._event("response.output_item.added", output_index=0, item=item))
            out.append(self._event("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
                                   part={"type": "output_text", "text": "", "annotations": []}))
        self.text.append(text)
        out.append(self._event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                               delta=text))
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        known = self.calls.get(index)
        out = []
        if known is None:
            known = self.calls[index] = {"id": call.get("id"), "function": {"name": function.get("name"),
                                                                             "arguments": ""}}
            item = {**_call_item(known, index, self.response_id), "status": "in_progress"}
            out.append(self._event("response.output_item.added", output_index=self._call_position(index), item=item))
        piece = function.get("arguments") or ""
        if piece:
            known["function"]["arguments"] += piece
            out.append(self._event("response.function_call_arguments.delta", output_index=self._call_position(index),
                                   item_id=f"fc_{self.response_id[5:]}_{index}", delta=piece))
        return out

    def _call_position(self, index: int) -> int:
        return index + (1 if self.message_open else 0)

    def finish_events(self) -> list[bytes]:
        out = []
        output: list[dict[str, Any]] = []
        if self.message_open:
            item = _message_item("msg_" + self.response_id[5:], "".join(self.text))
            part = item["content"][0]
            out.append(self._event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
                                   text=part["text"]))
            out.append(self._event("response.content_part.done", item_id=item["id"], output_index=0,
                                   content_index=0, part=part))
            out.append(self._event("response.output_item.done", output_index=0, item=item))
            output.append(item)
        for index, call in sorted(self.calls.items()):
            item = _call_item(call, index, self.response_id)
            position = self._call_position(index)
            out.append(self._event("response.function_call_arguments.done", output_index=position,
                                   item_id=item["id"], arguments=item["arguments"]))
            out.append(self._event("response.output_item.done", output_index=position, item=item))
            output.append(item)
        response = _shell(self.request, self.response_id, self.created, "completed")
        if self.finish == "length":
            response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
        response.update(output=output, usage=_usage(self.usage))
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=response))
        return out


async def as_response_events(chat_events: AsyncIterator[bytes], request: dict[str, Any],
                             close: Callable[[], Awaitable[None]]) -> AsyncGenerator[bytes, None]:
    """The chat stream ``chat_events`` as ``response.*`` events; ``close()`` ends the chat stream."""
    translator = ChatToResponseEvents(request)
    decoder = SSEDecoder()
    try:
        for event in translator.start():
            yield event
        async for raw in chat_events:
            for data in decoder.data(raw):
                for out in translator.feed(data):
                    yield out
    finally:
        await close()
