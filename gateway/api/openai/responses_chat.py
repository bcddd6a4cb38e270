"""``/v1/responses`` for providers without it: a Responses request as a chat request.

``instructions`` and ``system``/``developer`` messages (anywhere in ``input``) become system
messages; ``user``/``assistant`` messages keep their text, images (``input_image`` with a URL),
files (``input_file`` with ``file_data``) and audio; ``function_call`` and ``custom_tool_call``
items become the assistant's ``tool_calls`` (joined to the assistant message before them), their
outputs ``tool`` messages (images in an output follow as a user message); so does an ``mcp_call``
item (an MCP tool the gateway ran in an earlier turn: ``api/openai/mcp_items.py``), as the call of
the function that tool is offered as, and its output or error. Tools: see ``responses_tools.py``.
``reasoning.effort`` → ``reasoning_effort``, ``text.verbosity`` → ``verbosity``, ``text.format`` →
``response_format``, ``max_output_tokens`` → ``max_tokens``;
``prompt_cache_key``, ``safety_identifier``, ``user``, ``temperature``, ``top_p`` and
``parallel_tool_calls`` are copied.

What chat has no room for is dropped and named in ``Call.dropped`` (one debug line when the call is
sent): reasoning items
(their encrypted content is for OpenAI's own models), hosted tools and their calls, item
references, ``store``, ``include``, ``metadata``, ``truncation``, ``client_metadata``, …
``previous_response_id`` and ``conversation`` name a response or conversation stored at OpenAI;
the gateway stores none, so it answers as OpenAI does for an id it does not know (400
``previous_response_not_found``): the client sends the whole conversation in ``input`` instead,
as Codex does (``store: false``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ...core.dropped import Dropped
from ...core.mcp import function_name
from ...errors import InvalidRequest
from .responses_render import reasoning_details
from .responses_tools import CUSTOM_ARGUMENT, ToolMap

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_COPIED = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key")
# fields read elsewhere here, or that need no word in the debug line
_READ = frozenset({"model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "reasoning",
                   "text", "stream", *_COPIED})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "refusal"})


class PreviousResponseNotFound(InvalidRequest):
    code = "previous_response_not_found"


def responses_to_chat(body: dict[str, Any], mcp_servers: Mapping[str, str] | None = None,
                      ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The chat request for a Responses request (see the module docstring), and what it left out.
    ``mcp_servers``: the server id of each ``server_label`` the request's MCP tools give."""
    dropped = Dropped("responses->chat")
    _refuse_stored(body)
    tools = ToolMap(body.get("tools"), dropped)
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(Conversation(tools, dropped, mcp_servers or {}).messages(body.get("input")))
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    chat.update({k: body[k] for k in _COPIED if body.get(k) is not None})
    if isinstance(body.get("max_output_tokens"), int):
        chat["max_tokens"] = body["max_output_tokens"]
    if tools.chat_tools:
        chat["tools"] = tools.chat_tools
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = tools.tool_choice(body["tool_choice"])
    _reasoning_and_text(body, chat, dropped)
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    for name in body:
        if name not in _READ and body[name] is not None:
            dropped.add(name)
    return chat, tuple(dropped.names)


def _refuse_stored(body: dict[str, Any]) -> None:
    previous = body.get("previous_response_id")
    if previous:
        raise PreviousResponseNotFound(f"Previous response with id '{str(previous)[:100]}' not found.",
                                       param="previous_response_id")
    conversation = body.get("conversation")
    if conversation:
        ident = conversation.get("id") if isinstance(conversation, dict) else conversation
        raise InvalidRequest(f"Conversation with id '{str(ident)[:100]}' not found.", param="conversation")


def _reasoning_and_text(body: dict[str, Any], chat: dict[str, Any], dropped: Dropped) -> None:
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        if isinstance(reasoning.get("effort"), str):
            chat["reasoning_effort"] = reasoning["effort"]
        if reasoning.get("summary") is not None or reasoning.get("generate_summary") is not None:
            dropped.add("reasoning.summary")
    text = body.get("text")
    if not isinstance(text, dict):
        return
    if isinstance(text.get("verbosity"), str):
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(fmt, dict):
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}


class Conversation:
    """Builds the chat messages of a Responses ``input`` (see the module docstring)."""

    def __init__(self, tools: ToolMap, dropped: Dropped, mcp_servers: Mapping[str, str] | None = None):
        self.tools = tools
        self.dropped = dropped
        self.mcp_servers = mcp_servers or {}
        self.out: list[dict[str, Any]] = []
        self.pending_images: list[dict[str, Any]] = []  # images in tool outputs, sent after the outputs
        self.reasoning: dict[str, Any] = {}  # the next assistant message's reasoning (from a reasoning item)

    def messages(self, value: object) -> list[dict[str, Any]]:
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if not isinstance(value, list) or not value:
            raise InvalidRequest("'input' must be a string or a non-empty array of items.", param="input")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidRequest(f"input[{i}] must be an object.", param=f"input[{i}]")
            kind = item.get("type") or ("message" if "role" in item else None)
            if kind not in ("function_call_output", "custom_tool_call_output"):
                self._flush_images()
            self._item(kind, item)
        self._flush_images()
        return self.out

    def _item(self, kind: object, item: dict[str, Any]) -> None:
        if kind == "message" and item.get("role") in _ROLES:
            self._message(item)
        elif kind == "function_call":
            self._call(item, item.get("name"), str(item.get("arguments") or "{}"))
        elif kind == "custom_tool_call":
            arguments = orjson.dumps({CUSTOM_ARGUMENT: str(item.get("input") or "")}).decode()
            self._call(item, item.get("name"), arguments)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._output(item)
        elif kind == "mcp_call" and isinstance(item.get("name"), str):
            self._mcp_call(item)
        elif kind == "reasoning" and (details := reasoning_details(item.get("encrypted_content"))) is not None:
            texts = [p.get("text") for p in item.get("content") or () if isinstance(p, dict)]
            self.reasoning = {"reasoning_content": "".join(t for t in texts if isinstance(t, str)),
                              "reasoning_details": details}
        else:
            self.dropped.add(f"input[type={kind}]")

    def _message(self, item: dict[str, Any]) -> None:
        role = _ROLES[item["role"]]
        content = item.get("content")
        if isinstance(content, str):
            self._append({"role": role, "content": content})
            return
        parts = self._parts(content if isinstance(content, list) else [])
        if role != "user" or all(p["type"] == "text" for p in parts):  # only user turns take media in chat
            text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
            if len(parts) != sum(p["type"] == "text" for p in parts):
                self.dropped.add(f"{item['role']} media")
            self._append({"role": role, "content": text})
        else:
            self._append({"role": role, "content": parts})

    def _append(self, message: dict[str, Any]) -> None:
        """A message; an assistant one takes the reasoning a reasoning item before it carried."""
        if message["role"] == "assistant" and self.reasoning:
            message.update(self.reasoning)
            self.reasoning = {}
        self.out.append(message)

    def _parts(self, content: list[Any]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in _TEXT_PARTS and isinstance(part, dict):
                parts.append({"type": "text", "text": str(part.get("text") or part.get("refusal") or "")})
            elif kind == "input_image" and isinstance(part, dict) and isinstance(part.get("image_url"), str):
                image: dict[str, Any] = {"url": part["image_url"]}
                if part.get("detail") in ("low", "high", "auto"):
                    image["detail"] = part["detail"]
                parts.append({"type": "image_url", "image_url": image})
            elif kind == "input_file" and isinstance(part, dict) and isinstance(part.get("file_data"), str):
                file = {"file_data": part["file_data"]}
                if isinstance(part.get("filename"), str):
                    file["filename"] = part["filename"]
                parts.append({"type": "file", "file": file})
            elif kind == "input_audio" and isinstance(part, dict) and isinstance(part.get("input_audio"), dict):
                parts.append({"type": "input_audio", "input_audio": part["input_audio"]})
            else:
                self.dropped.add(f"content[type={kind}]")
        return parts

    def _call(self, item: dict[str, Any], name: object, arguments: str) -> None:
        call = {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
                "function": {"name": self.tools.chat_name(name, item.get("namespace")), "arguments": arguments}}
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant" and not self.reasoning:
            last.setdefault("tool_calls", []).append(call)
            if not last.get("content"):
                last["content"] = None
        else:
            self._append({"role": "assistant", "content": None, "tool_calls": [call]})

    def _mcp_call(self, item: dict[str, Any]) -> None:
        """An MCP call the gateway ran in an earlier turn: the function call it was, and its result."""
        label = str(item.get("server_label") or "")
        call_id = str(item.get("id") or "")
        name = function_name(self.mcp_servers.get(label, label), item["name"])
        self._call({"call_id": call_id}, name, str(item.get("arguments") or "{}"))
        output, error = item.get("output"), item.get("error")
        if not isinstance(output, str):
            message = error.get("message") if isinstance(error, dict) else error
            output = (message if isinstance(message, str) else orjson.dumps(error).decode() if error is not None
                      else "The tool did not run.")
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def _output(self, item: dict[str, Any]) -> None:
        output = item.get("output")
        if isinstance(output, list):
            parts = self._parts(output)
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            self.pending_images += [p for p in parts if p["type"] != "text"]
        elif isinstance(output, str):
            text = output
        else:
            text = orjson.dumps(output).decode()
        self.out.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": text})

    def _flush_images(self) -> None:
        if self.pending_images:
            self.out.append({"role": "user", "content": self.pending_images})
            self.pending_images = []
