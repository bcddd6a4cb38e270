"""One round of the tool loop as a chat stream: what goes on to the client as it comes, and what the
loop keeps to decide what follows.

The round's events (OpenAI chat chunks, as the pipeline relays them) pass on as they came, but for
what only the loop may say: tool calls (it runs the MCP ones, and hands the others on at the end),
the finish reason, usage (the loop sends one, every round's added up) and ``[DONE]``. A chunk that
carried any of them passes on without it (or not at all, when nothing else was in it). An error
event passes on and ends the round; the loop stops there.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..core.sse import SSEDecoder
from .sse import DONE


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class RoundReader:
    """Feed it the round's stream items; ``feed`` returns what goes on to the client."""

    def __init__(self, model: str, lead: str = ""):
        self.lead = lead  # text sent before the round's first text (between the texts of two rounds)
        self.base: dict[str, Any] = {"id": f"chatcmpl-{time.time_ns():x}", "object": "chat.completion.chunk",
                                     "created": int(time.time()), "model": model}
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.details: dict[int, dict[str, Any]] = {}  # reasoning_details by their index (signed thinking)
        self.calls: dict[int, dict[str, Any]] = {}  # tool calls by their index: id, name, argument pieces
        self.finish: str | None = None
        self.done = False  # [DONE] came
        self.failed = False  # an error event came
        self._decoder = SSEDecoder()

    def feed(self, item: bytes) -> list[bytes]:
        out: list[bytes] = []
        for event in self._decoder.feed(item):
            if event.data and not self.done and not self.failed:
                out += self._data(event.raw, event.data)
        return out

    def _data(self, event: bytes, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self.failed = True
            return [event + b"\n\n"]
        self.base.update({k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk})
        held = "usage" in chunk
        out: list[bytes] = []
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                held = self._choice(choice, out) or held
        if not held:
            return [*out, event + b"\n\n"]
        rest = self._without_held(chunk)
        return [*out, _event(rest)] if rest is not None else out

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> bool:
        """Keep what the choice says; True when it holds something the loop says itself."""
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        assert isinstance(delta, dict)
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.lead and not self.content:
                out.append(self.chunk({"content": self.lead}))
            self.content.append(text)
        if isinstance(delta.get("reasoning_content"), str):
            self.reasoning.append(delta["reasoning_content"])
        for detail in delta.get("reasoning_details") or ():
            if isinstance(detail, dict):
                index = detail.get("index")
                key = index if isinstance(index, int) else len(self.details)
                self.details[key] = {**self.details.get(key, {}), **{k: v for k, v in detail.items() if k != "index"}}
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._call(call)
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])
        return bool(delta.get("tool_calls")) or choice.get("finish_reason") is not None

    def _call(self, call: dict[str, Any]) -> None:
        index = call.get("index")
        index = index if isinstance(index, int) else len(self.calls)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        assert isinstance(function, dict)
        kept = self.calls.setdefault(index, {"id": "", "name": "", "arguments": []})
        if call.get("id"):
            kept["id"] = str(call["id"])
        if function.get("name"):
            kept["name"] += str(function["name"])
        if isinstance(function.get("arguments"), str):
            kept["arguments"].append(function["arguments"])

    @staticmethod
    def _without_held(chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk without usage, tool calls and finish reasons; None when nothing else is left."""
        choices = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "tool_calls"}
            if any(v not in (None, "", []) for k, v in delta.items() if k != "role"):
                choices.append({**choice, "delta": delta, "finish_reason": None})
        if not choices:
            return None
        return {**{k: v for k, v in chunk.items() if k != "usage"}, "choices": choices}

    # --- what the loop reads once the round is over -----------------------------------------------
    def tool_calls(self) -> list[dict[str, Any]]:
        return [{"id": kept["id"] or f"call_{n}", "type": "function",
                 "function": {"name": kept["name"], "arguments": "".join(kept["arguments"])}}
                for n, kept in sorted(self.calls.items())]

    def message(self) -> dict[str, Any]:
        """The round's assistant message, as a chat request carries it back."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.details:
            message["reasoning_details"] = [detail for _, detail in sorted(self.details.items())]
        calls = self.tool_calls()
        if calls:
            message["tool_calls"] = calls
        return message

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event({**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def ending(self, calls: list[dict[str, Any]], finish: str, usage: dict[str, Any] | None) -> bytes:
        """The stream's end: the tool calls handed to the client, the finish reason, the usage of
        every round, ``[DONE]``."""
        out = [self.chunk({"tool_calls": [{"index": n, **call} for n, call in enumerate(calls)]}) if calls else b"",
               self.chunk({}, finish)]
        if usage is not None:
            out.append(_event({**self.base, "choices": [], "usage": usage}))
        return b"".join(out) + DONE
