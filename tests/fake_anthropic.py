"""A controllable fake Anthropic Messages upstream (``POST /v1/messages``), on ``FakeUpstream``'s machinery.

It checks requests the way the real API does (``x-api-key``, ``anthropic-version``, ``max_tokens``,
user, assistant and (mid-conversation) system roles only, tool results first in a user turn, no
``tool_choice`` without tools)
and answers with Anthropic's shapes: whole messages, SSE streams (``message_start`` …
``message_stop``, with ``ping``), and errors ``{"type": "error", "error": {"type", "message"}}``::

    with FakeAnthropic() as fake:
        fake.script(AnthropicBehaviour(status=429, headers={"retry-after": "30"}))
        fake.script(AnthropicBehaviour(tool_uses=[{"name": "get_weather", "input": {"city": "Paris"}}]))

Scripted behaviours (``Behaviour``'s fields: status, headers, body, delay_s, text, chunks,
chunk_delay_s, cut_after, usage) apply to ``/v1/messages``; ``AnthropicBehaviour`` adds tool use,
the stop reason, cache tokens and an ``error`` event mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_upstream import DEFAULT_CHUNKS, DEFAULT_TEXT, Behaviour, FakeUpstream, Recorded, split_text

MESSAGES_PATH = "/v1/messages"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


@dataclass
class AnthropicBehaviour(Behaviour):
    """``Behaviour`` plus what only Anthropic answers have."""

    tool_uses: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "input", "id"?}] after the text
    stop_reason: str | None = None  # default: "tool_use" with tool_uses, else "end_turn"
    cache_read_tokens: int = 0
    error_after: int | None = None  # streams: an ``error`` event (overloaded) after this many events, then the end


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


def _words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(_words(b.get("text") or b.get("content") or "") for b in content if isinstance(b, dict))
    return 0


def input_tokens_of(body: dict[str, Any]) -> int:
    """Deterministic: the words of the system prompt and of every message's text, plus 3 per message."""
    messages = body.get("messages") or []
    return _words(body.get("system")) + sum(3 + _words(m.get("content")) for m in messages if isinstance(m, dict))


def request_problem(headers: Any, body: Any) -> tuple[int, str] | None:
    """What the real API would refuse in this request, as (status, message); None if it is acceptable."""
    if not headers.get("x-api-key"):
        return 401, "x-api-key header is required"
    if not headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    if not isinstance(body, dict):
        return 400, "the request body must be a JSON object"
    if not isinstance(body.get("max_tokens"), int):
        return 400, "max_tokens: Field required"
    if body.get("tool_choice") is not None and not body.get("tools"):
        return 400, "tool_choice may only be specified while providing tools"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, "messages: at least one message is required"
    for i, message in enumerate(messages):
        problem = _message_problem(i, message)
        if problem:
            return 400, problem
    return None


def _message_problem(i: int, message: Any) -> str | None:
    role = message.get("role") if isinstance(message, dict) else None
    if role not in ("user", "assistant", "system"):
        return f'messages.{i}.role: Input should be "user", "assistant" or "system"'
    content = message.get("content")
    if isinstance(content, list):
        kinds = [b.get("type") for b in content if isinstance(b, dict)]
        if "tool_result" in kinds and kinds.index("tool_result") > 0 and kinds[0] != "tool_result":
            return f"messages.{i}: tool_result blocks must come first in the content"
        if any(b.get("type") == "text" and not b.get("text") for b in content if isinstance(b, dict)):
            return f"messages.{i}: text content blocks must be non-empty"
    return None


class FakeAnthropic(FakeUpstream):
    """Fake Anthropic upstream; scripting, recording and counting as ``FakeUpstream`` (count = /v1/messages)."""

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        _, body = await self._json_body(request)
        key = request.headers.get("x-api-key")
        messages = request.method == "POST" and request.path == MESSAGES_PATH
        with self._cond:
            if self._record:
                self._records.append(Recorded(request.method, request.path,
                                              {k.lower(): v for k, v in request.headers.items()}, body, key,
                                              time.monotonic()))
            if messages:
                self._chat_count += 1
                if key is not None:
                    self._key_counts[key] = self._key_counts.get(key, 0) + 1
        if not messages:
            return _json(error_body(404, f"Unknown endpoint {request.method} {request.path}"), 404)
        beh = self._next_behaviour(key)
        problem = request_problem(request.headers, body)
        if problem is not None and beh.body is None and beh.status < 300:
            return _json(error_body(*problem), problem[0])
        return await self._answer(request, body, beh)

    async def _answer(self, request: web.BaseRequest, body: dict[str, Any], beh: Behaviour) -> web.StreamResponse:
        if beh.hang:
            while True:
                await asyncio.sleep(3600)
        if beh.delay_s > 0:
            await asyncio.sleep(beh.delay_s)
        if beh.body is not None:
            return _json(beh.body, beh.status, beh.headers)
        if beh.status >= 300:
            return _json(error_body(beh.status, f"Fake Anthropic scripted error {beh.status}"), beh.status, beh.headers)
        extra = beh if isinstance(beh, AnthropicBehaviour) else AnthropicBehaviour()
        if body.get("stream"):
            return await self._sse(request, body, beh, extra)
        return _json(self._anthropic_message(body, beh, extra), headers=beh.headers)

    def _anthropic_usage(self, body: dict[str, Any], text: str, extra: AnthropicBehaviour) -> dict[str, Any]:
        return {"input_tokens": input_tokens_of(body), "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": extra.cache_read_tokens, "output_tokens": len(text.split())}

    def _anthropic_message(self, body: dict[str, Any], beh: Behaviour, extra: AnthropicBehaviour) -> dict[str, Any]:
        text = DEFAULT_TEXT if beh.text is None else beh.text
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        for n, tool in enumerate(extra.tool_uses):
            content.append({"type": "tool_use", "id": tool.get("id", f"toolu_fake{n}"), "name": tool["name"],
                            "input": tool.get("input", {})})
        message: dict[str, Any] = {
            "id": f"msg_fake{next(self._ids)}", "type": "message", "role": "assistant",
            "model": body.get("model"), "content": content,
            "stop_reason": extra.stop_reason or ("tool_use" if extra.tool_uses else "end_turn"),
            "stop_sequence": None,
        }
        if beh.usage:
            message["usage"] = self._anthropic_usage(body, text, extra)
        return message

    def _events(self, body: dict[str, Any], beh: Behaviour, extra: AnthropicBehaviour) -> list[dict[str, Any]]:
        whole = self._anthropic_message(body, beh, extra)
        usage = whole.get("usage") or {}
        start = {**whole, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1} if usage else {}}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
        for index, block in enumerate(whole["content"]):
            events.extend(_block_events(index, block, beh.chunks or DEFAULT_CHUNKS))
        delta: dict[str, Any] = {"type": "message_delta",
                                 "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None}}
        if usage:
            delta["usage"] = {"output_tokens": usage["output_tokens"]}
        return [*events, delta, {"type": "message_stop"}]

    async def _sse(self, request: web.BaseRequest, body: dict[str, Any], beh: Behaviour,
                      extra: AnthropicBehaviour) -> web.StreamResponse:
        events = self._events(body, beh, extra)
        if extra.error_after is not None:
            events = [*events[:extra.error_after],
                      {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           **beh.headers})
        try:
            await resp.prepare(request)
            for i, event in enumerate(events):
                if beh.cut_after is not None and i >= beh.cut_after:
                    if request.transport is not None:
                        request.transport.abort()  # no message_stop: the stream is cut
                    return resp
                if i and beh.chunk_delay_s > 0:
                    await asyncio.sleep(beh.chunk_delay_s)
                await resp.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()
        return resp


def _block_events(index: int, block: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
    if block["type"] == "text":
        start = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"], chunks)]
    else:
        start = {"type": "content_block_start", "index": index,
                 "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}
        arguments = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": piece} for piece in split_text(arguments, 2)]
    return [start, *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
            {"type": "content_block_stop", "index": index}]
