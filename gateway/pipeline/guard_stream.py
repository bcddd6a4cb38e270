"""Output guards on a streamed answer: the pipeline's events (OpenAI-shape chat or completion chunks,
or a Responses stream's ``response.*`` events) rewritten as the guards decide, before any dialect
translates them.

Each text stream of the answer (a choice's content, one tool call's arguments, one output text of
a Responses item: ``guardrails.body.chunk_texts`` keys) has its own ``StreamScanner``: a delta is
replaced by what is safe to send now (a match may still be growing at its end: held, sent with a
later delta), masked or restored. What is held is sent when that stream ends: appended to the
chunk that carries its ``finish_reason``, or in a chunk of its own before ``[DONE]``; in a
Responses stream, as one more delta before the ``.done`` event, whose whole text (and the final
response's) is replaced by what was sent. A block ends the stream at once with an error event
(``code: guardrail_blocked``, the guard and the entity; never the text), which each dialect turns
into its own error event; nothing of the match was sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Hashable
from typing import Any

import orjson

from ..core.call import CHAT, RESPONSES
from ..core.sse import SSEDecoder, data_object
from ..guardrails.body import chunk_texts
from ..guardrails.engine import RequestGuard
from ..guardrails.events import Block
from ..guardrails.stream import StreamScanner
from .context import Admitted, Stream
from .sse import error_event

TEXT_DELTA = "response.output_text.delta"
ARGS_DELTA = "response.function_call_arguments.delta"
FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
BASE_FIELDS = ("id", "object", "created", "model")  # what a chunk the screen makes copies from the last one
Out = list[tuple[bytes, dict[str, Any] | None, bytes]]  # (event name, the event rewritten or None, its raw bytes)


def guard_stream(admitted: Admitted, guard: RequestGuard, source: Stream) -> Stream:
    """``source`` through the output guards (closing the result closes ``source``)."""
    return Stream(_screened(admitted, guard, source), source.content_type, source)


async def _screened(admitted: Admitted, guard: RequestGuard, source: Stream) -> AsyncGenerator[bytes, None]:
    screen = StreamScreen(guard, admitted.call.operation)
    async for item in source:
        out = await screen.feed(item)
        if screen.blocked is not None:
            # recorded (by the source's settling, which closing it runs) as a stream that ended in an error
            admitted.exchange.outcome.error_code = "guardrail_blocked"
            await source.close()
            yield out + screen.error()
            return
        if out:
            yield out
    tail = await screen.end()  # a stream without its last event: what its scanners held
    if tail:
        yield tail


class StreamScreen:
    """One streamed answer's output guards (see the module docstring)."""

    def __init__(self, guard: RequestGuard, operation: str):
        self.guard = guard
        self.operation = operation
        self.scanners: dict[Hashable, StreamScanner] = {}
        self.finished: set[Hashable] = set()
        self.sent: dict[Hashable, list[str]] = {}  # Responses: what each text stream sent, for the .done events
        self.last: dict[str, Any] = {}  # chat and completions: the last chunk (its id, object, created, model)
        self.sequence = 0
        self.blocked: Block | None = None

    async def feed(self, item: bytes) -> bytes:
        out: Out = []
        for event in SSEDecoder().feed(item if item.endswith(b"\n\n") else item + b"\n\n"):
            if event.data == b"[DONE]":
                out += await self._flush_all()
                out.append((event.name, None, event.raw))
                continue
            parsed = data_object(event.data)
            if parsed is None or "error" in parsed:  # not JSON, or the pipeline's own error event
                out.append((event.name, None, event.raw))
                continue
            if self.operation == RESPONSES:
                out += await self._responses_event(event.name, parsed)
            else:
                out += await self._chunk(event.name, parsed)
            if self.blocked is not None:
                break
        return _serialized(out)

    async def end(self) -> bytes:
        return b"" if self.blocked is not None else _serialized(await self._flush_all())

    def error(self) -> bytes:
        block = self.blocked
        assert block is not None
        details = {"guardrail": block.guardrail, "entity": block.entity}
        if self.operation != RESPONSES:
            return error_event(block.message(), "invalid_request_error", "guardrail_blocked", details)
        event = {"type": "error", "code": "guardrail_blocked", "message": block.message(), "param": None,
                 "sequence_number": self.sequence + 1, **details}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"

    # --- the text streams -----------------------------------------------------------------------
    def _scanner(self, key: Hashable) -> StreamScanner:
        scanner = self.scanners.get(key)
        if scanner is None:
            scanner = self.scanners[key] = self.guard.output_scanner()
        return scanner

    def _feed(self, key: Hashable, text: str) -> str:
        step = self._scanner(key).feed(text)
        if step.blocked is not None:
            self.blocked = step.blocked
        return step.text

    async def _finish(self, key: Hashable) -> str:
        """What ``key``'s stream still held, now that it has ended ("" once blocked)."""
        if key in self.finished or key not in self.scanners:
            return ""
        self.finished.add(key)
        step = await self.scanners[key].finish()
        if step.blocked is not None:
            self.blocked = step.blocked
        return step.text

    # --- chat and completion chunks -------------------------------------------------------------
    async def _chunk(self, name: bytes, chunk: dict[str, Any]) -> Out:
        self.last = chunk
        if not self._plain_text(chunk):
            found = chunk_texts(self.operation, chunk)
            if found.texts:
                texts = [self._feed(key, text) for key, text in zip(found.keys, found.texts, strict=True)]
                chunk = found.replaced(chunk, texts)
        if self.blocked is not None:
            return []
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for i, choice in enumerate(choices):
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    for key, rest in await self._rests(choice.get("index", i)):
                        choices[i] = choice = _appended(choice, key, rest)
        return [] if self.blocked is not None else [(name, chunk, b"")]

    def _plain_text(self, chunk: dict[str, Any]) -> bool:
        """The common chat chunk (one choice, its delta a piece of text or nothing) guarded in place:
        what ``chunk_texts`` and ``replaced`` would do, without their copies (the chunk is this
        screen's own, parsed from the event). False: any other chunk, for the general way."""
        choices = chunk.get("choices")
        if self.operation != CHAT or not isinstance(choices, list) or len(choices) != 1:
            return not choices and isinstance(choices, list)  # a usage chunk: no text
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict) or "tool_calls" in delta or "function_call" in delta:
            return False
        text = delta.get("content")
        if isinstance(text, str):
            delta["content"] = self._feed(("content", choice.get("index", 0)), text)
        return True

    async def _rests(self, index: Any = None) -> list[tuple[Hashable, str]]:
        """The held rest of every text stream of choice ``index`` (None: of every choice), ended now."""
        keys = [k for k in self.scanners if k not in self.finished and (index is None or _choice_of(k) == index)]
        rests = [(key, await self._finish(key)) for key in keys]
        return [(key, rest) for key, rest in rests if rest]

    async def _flush_all(self) -> Out:
        if self.operation == RESPONSES:
            return []  # a Responses stream ends its texts at their .done events
        out: Out = []
        for key, rest in await self._rests():
            choice = _appended({"index": _choice_of(key), "finish_reason": None}, key, rest)
            synthetic: dict[str, Any] = {k: self.last[k] for k in BASE_FIELDS if k in self.last}
            synthetic["choices"] = [choice]
            out.append((b"", synthetic, b""))
        return [] if self.blocked is not None else out

    # --- Responses events -----------------------------------------------------------------------
    async def _responses_event(self, name: bytes, event: dict[str, Any]) -> Out:
        kind = event.get("type")
        sequence = event.get("sequence_number")
        if isinstance(sequence, int):
            self.sequence = sequence
        out: Out = []
        if kind in (TEXT_DELTA, ARGS_DELTA):
            found = chunk_texts(RESPONSES, event)
            texts = [self._feed(key, text) for key, text in zip(found.keys, found.texts, strict=True)]
            for key, text in zip(found.keys, texts, strict=True):
                self.sent.setdefault(key, []).append(text)
            event = found.replaced(event, texts)
        elif kind in ("response.output_text.done", "response.function_call_arguments.done"):
            delta = TEXT_DELTA if kind == "response.output_text.done" else ARGS_DELTA
            field = "text" if delta == TEXT_DELTA else "arguments"
            key = (delta, event.get("output_index"), event.get("content_index"))
            rest = await self._finish(key)
            if rest:
                out.append((delta.encode() if name else b"", _rest_event(event, delta, rest), b""))
                self.sent.setdefault(key, []).append(rest)
            event[field] = await self._whole(key, event.get(field))
        elif kind == "response.content_part.done" and isinstance(event.get("part"), dict):
            event["part"] = await self._part(event["part"], event.get("output_index"), event.get("content_index"))
        elif kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            event["item"] = await self._item(event["item"], event.get("output_index"))
        elif kind in FINAL and isinstance(event.get("response"), dict):
            event["response"] = await self._response(event["response"])
        return [] if self.blocked is not None else [*out, (name, event, b"")]

    async def _whole(self, key: Hashable, text: Any) -> Any:
        """The text of ``key`` as sent; one no delta carried (sent whole in a final event) is guarded whole."""
        if not isinstance(text, str):
            return text
        if key not in self.sent:
            self.sent[key] = [self._feed(key, text)]
            self.sent[key].append(await self._finish(key))
        return "".join(self.sent[key])

    async def _part(self, part: dict[str, Any], output: Any, index: Any) -> dict[str, Any]:
        if part.get("type") != "output_text":
            return part
        return {**part, "text": await self._whole((TEXT_DELTA, output, index), part.get("text"))}

    async def _item(self, item: dict[str, Any], output: Any) -> dict[str, Any]:
        if item.get("type") == "function_call":
            return {**item, "arguments": await self._whole((ARGS_DELTA, output, None), item.get("arguments"))}
        content = item.get("content")
        if item.get("type") != "message" or not isinstance(content, list):
            return item
        return {**item, "content": [await self._part(part, output, i) if isinstance(part, dict) else part
                                    for i, part in enumerate(content)]}

    async def _response(self, response: dict[str, Any]) -> dict[str, Any]:
        output = response.get("output")
        if not isinstance(output, list):
            return response
        return {**response, "output": [await self._item(item, i) if isinstance(item, dict) else item
                                       for i, item in enumerate(output)]}


def _choice_of(key: Hashable) -> Any:
    """The choice a chat or completion text stream belongs to (``chunk_texts`` keys: (kind, index, ...))."""
    return key[1] if isinstance(key, tuple) and len(key) > 1 else None


def _appended(choice: dict[str, Any], key: Hashable, rest: str) -> dict[str, Any]:
    """``choice`` (a chunk's) with ``rest`` appended to the text stream ``key``."""
    kind = key[0] if isinstance(key, tuple) else None
    if kind == "text":
        return {**choice, "text": str(choice.get("text") or "") + rest}
    delta = dict(choice.get("delta") or {})
    if kind == "content":
        delta["content"] = str(delta.get("content") or "") + rest
    elif kind == "tool" and isinstance(key, tuple):
        calls = [c for c in delta.get("tool_calls") or () if isinstance(c, dict)]
        mine = next((c for c in calls if c.get("index") == key[2]), None)
        if mine is None:
            calls.append({"index": key[2], "function": {"arguments": rest}})
        else:
            function = dict(mine.get("function") or {})
            function["arguments"] = str(function.get("arguments") or "") + rest
            calls[calls.index(mine)] = {**mine, "function": function}
        delta["tool_calls"] = calls
    return {**choice, "delta": delta}


def _rest_event(done: dict[str, Any], kind: str, rest: str) -> dict[str, Any]:
    """The delta that carries what a Responses text stream held, sent before its .done event."""
    event: dict[str, Any] = {"type": kind}
    event.update((k, done[k]) for k in ("item_id", "output_index", "content_index") if k in done)
    event.update(delta=rest, sequence_number=done.get("sequence_number"))
    return event




def _serialized(out: Out) -> bytes:
    parts = []
    for name, event, raw in out:
        head = b"event: " + name + b"\n" if name else b""
        parts.append(raw + b"\n\n" if event is None else head + b"data: " + orjson.dumps(event) + b"\n\n")
    return b"".join(parts)
