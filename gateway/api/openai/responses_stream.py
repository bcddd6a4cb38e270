"""A chat stream as ``response.*`` events, for ``/v1/responses`` translated to chat.

``response.created`` and ``response.in_progress`` first; then each output item as it comes
(``output_item.added``, its deltas, ``output_item.done``): reasoning text, the message's text
(``content_part.*`` and ``output_text.*``), tool calls (``function_call_arguments.*``; a custom
tool's input is whole in its ``custom_tool_call_input.done``). A text item is done when another
item starts; tool calls when the stream ends. The stream always ends with ``response.completed``
(or ``response.incomplete``) carrying the usage, estimated when the provider sent none: clients
such as Codex retry a stream without it and read the usage there. A stream the provider broke
off ends with ``response.failed`` carrying the error (Codex retries it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...core.tokens import estimate_prompt_tokens, tokens_for_chars
from ...core.usage import Usage
from ...pipeline import Stream, translated
from ..anthropic.text_run import TextRun, text_span
from ..chat_usage import chat_usage
from ..dialects import as_dict, event_details, pipeline_error
from .responses_render import (
    call_item,
    custom_input,
    finished,
    message_item,
    reasoning_item,
    response_usage,
    shell,
    wants_encrypted,
)
from .responses_tools import ToolMap

_DELTA_HEAD = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'


@dataclass(slots=True)
class _Item:
    kind: str  # "reasoning" | "message" | "call"
    index: int  # output_index
    item_id: str
    parts: list[str]  # text or argument pieces
    call_id: str = ""
    name: str = ""
    done: bool = False
    escaped: list[bytes] = field(default_factory=list)  # text pieces from the fast path, still JSON-escaped
    whole: dict[str, Any] | None = None  # an item the gateway made whole (an MCP step's: ``mcp_items.py``)
    template: bytes = b""  # a text delta event, %d the sequence number and %b the (escaped) text

    def flush(self) -> None:
        """The escaped pieces decoded, at once, onto ``parts`` (before a piece that came parsed)."""
        if self.escaped:
            self.parts.append(orjson.loads(b'"' + b"".join(self.escaped) + b'"'))
            self.escaped.clear()

    def text(self) -> str:
        """All of the item's text or arguments."""
        self.flush()
        return "".join(self.parts)


class ChatToResponseEvents:
    """Feed it the data of the chat stream's events; it returns the Responses events (bytes)."""

    def __init__(self, request: dict[str, Any], chat_body: dict[str, Any]):
        self.request = request
        self.chat_body = chat_body  # what was sent, for an estimate when no usage comes
        self.tools = ToolMap(request.get("tools"))
        self.response_id = f"resp_{time.time_ns():x}"
        self.created = int(time.time())
        self.sequence = 0
        self.items: list[_Item] = []
        self.text_item: _Item | None = None  # the reasoning or message item taking deltas
        self.calls: dict[int, _Item] = {}  # tool calls by their chat index
        self.usage: dict[str, Any] | None = None
        self.finish: object = None
        self.ended = False
        self.encrypted = wants_encrypted(request)
        self.run = TextRun()  # the bytes this stream's text chunks share
        self.details: dict[int, dict[str, Any]] = {}  # chat's reasoning_details, by their index

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self) -> list[bytes]:
        response = orjson.dumps(shell(self.request, self.response_id, self.created, "in_progress"))
        self.sequence = 2
        return [b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
                + response + b"}\n\n",
                b'event: response.in_progress\ndata: {"type":"response.in_progress","sequence_number":1,"response":'
                + response + b"}\n\n"]

    def feed_item(self, raw: bytes) -> list[bytes]:
        """An item of the chat stream (whole ``data:`` events) -> the Responses events it makes. While
        the message is open, text chunks are written as ``output_text.delta`` events from their bytes
        (``api/anthropic/text_run.py``: the usual case); any other chunk takes ``feed``."""
        if b"\r" in raw:
            raw = raw.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        pos, size = 0, len(raw)
        while pos < size:
            message = self._open_message()
            if message is not None and self.run.tail:
                pieces, pos, _ = self.run.rewrite(raw, pos, b"", b"")
                if pieces:
                    out += self._deltas(message, pieces[1::3])
                    continue
            cut = raw.find(b"\n\n", pos)
            cut = size if cut < 0 else cut + 2
            event, pos = raw[pos:cut], cut
            span = text_span(event) if message is not None else None
            if message is not None and span is not None:
                self.run.learn(event, *span)
                out += self._deltas(message, [event[span[0]:span[1]]])
            elif event.startswith(b"data:"):
                out += self.feed(event[5:].strip())
        return out

    def _deltas(self, message: _Item, texts: list[bytes]) -> list[bytes]:
        """``output_text.delta`` events for pieces of the message's text, still JSON-escaped."""
        out = []
        sequence, template = self.sequence, message.template
        for text in texts:
            if text:
                message.escaped.append(text)
                out.append(template % (sequence, text))
                sequence += 1
        self.sequence = sequence
        return out

    def _open_message(self) -> _Item | None:
        item = self.text_item
        return item if item is not None and item.kind == "message" and not self.ended else None

    def feed(self, data: bytes) -> list[bytes]:
        """The data of one chat SSE event -> the Responses events it makes."""
        if self.ended:
            return []
        if data == b"[DONE]":
            return self.finish_events()
        error = pipeline_error(data)
        if error is not None:
            return self.failed(error)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        out: list[bytes] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = as_dict(choice.get("delta"))
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                out += self._text("reasoning", delta["reasoning_content"])
            if self.encrypted and isinstance(delta.get("reasoning_details"), list):
                out += self._details(delta["reasoning_details"])
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._text("message", delta["content"])
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out += self._call(call)
            self.finish = choice.get("finish_reason") or self.finish
        return out

    def event(self, kind: str, **fields: Any) -> bytes:
        """One Responses event, numbered in this stream's sequence."""
        return self._event(kind, **fields)

    def place(self, item_id: str) -> tuple[int, list[bytes]]:
        """The output index for an item made whole elsewhere (set its ``whole`` with ``set_item``),
        and the events that close the text item open before it."""
        out = self._close(self.text_item) if self.text_item is not None else []
        self.text_item = None
        item = self._open("whole", item_id)
        item.done = True
        return item.index, out

    def set_item(self, index: int, whole: dict[str, Any]) -> None:
        self.items[index].whole = whole

    def _open(self, kind: str, item_id: str) -> _Item:
        item = _Item(kind, len(self.items), item_id, [])
        self.items.append(item)
        return item

    def _text(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        item = self.text_item
        if item is None or item.kind != kind:
            if item is not None:
                out += self._close(item)
            suffix = f"{self.response_id[5:]}_{len(self.items)}"
            item = self.text_item = self._open(kind, ("rs_" if kind == "reasoning" else "msg_") + suffix)
            item.template = (_DELTA_HEAD + b'%d,"item_id":"' + item.item_id.encode() + b'","output_index":'
                             + str(item.index).encode() + b',"content_index":0,"delta":"%b"}\n\n')
            if kind == "reasoning":
                out.append(self._event("response.output_item.added", output_index=item.index,
                                       item={**reasoning_item(item.item_id, ""), "content": []}))
            else:
                out.append(self._event("response.output_item.added", output_index=item.index,
                                       item={**message_item(item.item_id, "", "in_progress"), "content": []}))
                out.append(self._event("response.content_part.added", item_id=item.item_id, output_index=item.index,
                                       content_index=0, part={"type": "output_text", "text": "", "annotations": []}))
        if not text:
            return out
        item.flush()  # the pieces stay in their order
        item.parts.append(text)
        kind_event = "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
        out.append(self._event(kind_event, item_id=item.item_id, output_index=item.index, content_index=0, delta=text))
        return out

    def _details(self, details: list[Any]) -> list[bytes]:
        """Pieces of chat's ``reasoning_details`` (merged by their index) for the reasoning item's
        encrypted content; a reasoning item is opened for them if none is."""
        for detail in details:
            if isinstance(detail, dict):
                index = detail.get("index")
                key = index if isinstance(index, int) else len(self.details)
                self.details[key] = {**self.details.get(key, {}), **{k: v for k, v in detail.items() if k != "index"}}
        item = self.text_item
        return [] if item is not None and item.kind == "reasoning" else self._text("reasoning", "")

    def _reasoning_details(self) -> list[dict[str, Any]] | None:
        return [detail for _, detail in sorted(self.details.items())] or None

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        index = call.get("index")
        index = index if isinstance(index, int) else len(self.calls)
        function = as_dict(call.get("function"))
        out: list[bytes] = []
        item = self.calls.get(index)
        if item is None:
            if self.text_item is not None:
                out += self._close(self.text_item)
                self.text_item = None
            item = self.calls[index] = self._open("call", f"fc_{self.response_id[5:]}_{len(self.items)}")
            item.call_id, item.name = str(call.get("id") or ""), str(function.get("name") or "")
            shown = call_item(self.tools, item.item_id, item.call_id, item.name, "", "in_progress")
            out.append(self._event("response.output_item.added", output_index=item.index, item=shown))
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            item.parts.append(piece)
            if self.tools.tool_of(item.name).kind == "function":
                out.append(self._event("response.function_call_arguments.delta", item_id=item.item_id,
                                       output_index=item.index, delta=piece))
        return out

    def _close(self, item: _Item) -> list[bytes]:
        item.done = True
        whole = item.text()
        where = {"item_id": item.item_id, "output_index": item.index}
        if item.kind == "reasoning":
            done = reasoning_item(item.item_id, whole, self._reasoning_details())
            events = [self._event("response.reasoning_text.done", **where, content_index=0, text=whole)]
        elif item.kind == "message":
            done = message_item(item.item_id, whole)
            part = done["content"][0]
            events = [self._event("response.output_text.done", **where, content_index=0, text=whole),
                      self._event("response.content_part.done", **where, content_index=0, part=part)]
        else:
            done = call_item(self.tools, item.item_id, item.call_id, item.name, whole)
            if done["type"] == "custom_tool_call":
                events = [self._event("response.custom_tool_call_input.done", item_id=done["id"],
                                      output_index=item.index, input=custom_input(whole))]
            else:
                events = [self._event("response.function_call_arguments.done", **where, arguments=whole)]
        item.parts = [whole]
        return [*events, self._event("response.output_item.done", output_index=item.index, item=done)]

    def _output(self) -> list[dict[str, Any]]:
        output = []
        for item in self.items:
            whole = item.text()
            if item.whole is not None:
                output.append(item.whole)
            elif item.kind == "reasoning":
                output.append(reasoning_item(item.item_id, whole, self._reasoning_details()))
            elif item.kind == "message":
                output.append(message_item(item.item_id, whole))
            else:
                output.append(call_item(self.tools, item.item_id, item.call_id, item.name, whole))
        return output

    def _usage(self) -> Usage:
        """The provider's usage, else the gateway's estimate."""
        usage = chat_usage(self.usage)
        if usage is not None:
            return usage
        chars = sum(len(item.text()) for item in self.items)
        return Usage(estimate_prompt_tokens(self.chat_body.get("messages")), tokens_for_chars(chars), exact=False)

    def finish_events(self) -> list[bytes]:
        if self.ended:
            return []
        self.ended = True
        out = [event for item in self.items if not item.done for event in self._close(item)]
        response = finished(shell(self.request, self.response_id, self.created, "completed"), self.finish)
        response.update(output=self._output(), usage=response_usage(self._usage()))
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return [*out, self._event(kind, response=response)]

    def failed(self, error: dict[str, Any]) -> list[bytes]:
        """The stream broke off: ``response.failed`` with the error (and what was used so far)."""
        self.ended = True
        response = shell(self.request, self.response_id, self.created, "failed")
        response.update(output=self._output(), usage=response_usage(self._usage()),
                        error=failure(error, "The provider's stream broke off."))
        return [self._event("response.failed", response=response)]


async def as_response_events(chat_events: AsyncIterator[bytes], request: dict[str, Any], chat_body: dict[str, Any],
                             close: Callable[[], Awaitable[None]]) -> AsyncGenerator[bytes, None]:
    """The chat stream ``chat_events`` as ``response.*`` events; ``close()`` ends the chat stream."""
    translator = ChatToResponseEvents(request, chat_body)
    feed = translator.feed_item
    started = translator.start()  # sent with the first events, in one send
    try:
        async for raw in chat_events:
            out = feed(raw)
            if started:
                out, started = [*started, *out], []
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
        if started:
            yield b"".join(started)
        if not translator.ended:  # the chat stream ended without [DONE] and without an error event
            yield b"".join(translator.failed({"message": "The provider's stream ended before it was complete."}))
    finally:
        await close()


def failure(error: dict[str, Any], default: str) -> dict[str, str]:
    """A failed response's ``error`` from the pipeline's error event: its code and message, and a
    guardrail's name and entity when one blocked the answer."""
    return {"code": str(error.get("code") or "server_error"), "message": str(error.get("message") or default),
            **event_details(error)}


def native_events(source: Stream) -> Stream:
    """A Responses-native upstream's stream as it came, but for an error event the pipeline wrote
    itself (the upstream broke off), which becomes ``response.failed``."""
    shell_of = ChatToResponseEvents({}, {})

    def feed(item: bytes) -> list[bytes]:
        if not item.startswith(b'data: {"error"'):
            return [item]
        error = pipeline_error(item[6:].strip())
        if error is None:
            return [item]
        response = {"id": shell_of.response_id, "object": "response", "status": "failed", "output": [],
                    "error": failure(error, "The provider's stream broke off.")}
        return [b"event: response.failed\ndata: " + orjson.dumps({"type": "response.failed", "response": response})
                + b"\n\n"]

    return translated(source, feed, list, source.content_type)
