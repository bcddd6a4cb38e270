"""A controllable fake Gemini (Google AI Studio ``v1beta``) upstream for tests.

It answers ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` (events
separated by CRLF CRLF, no ``[DONE]``, as Google sends them), ``:countTokens``, ``:embedContent`` and
``:batchEmbedContents`` in Gemini's shapes, takes the key from ``x-goog-api-key`` and answers errors in the
``google.rpc`` model (``{"error": {"code", "message", "status", "details"}}``). Scripting, recording and the
lifecycle are ``FakeUpstream``'s (``tests/fake_upstream.py``); ``GeminiBehaviour`` adds what Gemini can say::

    with FakeGemini() as fake:
        fake.script(GeminiBehaviour(status=429, retry_delay="12s"), key="AIza...1")
        fake.set_default(GeminiBehaviour(function_call={"name": "get_weather", "args": {"city": "Paris"}}))

``Recorded.path`` includes the query string, so tests can check that no key ever travels in the URL.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fake_upstream import Behaviour, FakeUpstream, Recorded, split_text

DEFAULT_TEXT = "Hello from the fake Gemini"
_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|"
                   r"embedContent|batchEmbedContents|countTokens)$")
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class GeminiBehaviour(Behaviour):
    """``Behaviour`` plus Gemini's own answers."""

    function_call: dict[str, Any] | None = None  # answer with this functionCall part ({"name", "args"})
    finish_reason: str = "STOP"
    block_reason: str | None = None  # answer with promptFeedback.blockReason and no candidates
    retry_delay: str | None = None  # errors: a google.rpc.RetryInfo detail with this retryDelay ("12s")
    api_key_invalid: bool = False  # errors: an ErrorInfo detail with reason API_KEY_INVALID
    thoughts: int = 0  # thoughtsTokenCount in the usage
    cached: int = 0  # cachedContentTokenCount in the usage (a part of promptTokenCount)


def _words(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_words(v) for k, v in value.items() if k in ("text", "parts", "contents", "systemInstruction"))
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return len(value.split()) if isinstance(value, str) else 0


def prompt_tokens_of(body: dict[str, Any]) -> int:
    """Deterministic: the words of every text part of ``contents`` and ``systemInstruction``."""
    return _words({"contents": body.get("contents"), "systemInstruction": body.get("systemInstruction")})


def error_body(beh: GeminiBehaviour) -> dict[str, Any]:
    status = _STATUS.get(beh.status, "UNKNOWN")
    details: list[dict[str, Any]] = []
    if beh.api_key_invalid:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})
    if beh.retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": beh.retry_delay})
    message = "API key not valid. Please pass a valid API key." if beh.api_key_invalid else \
        f"Fake Gemini scripted error {beh.status}"
    error: dict[str, Any] = {"code": beh.status, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(),
                        headers={"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


class FakeGemini(FakeUpstream):
    """A fake Gemini API, scriptable like ``FakeUpstream`` (``count()`` counts generate requests)."""

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        _, body = await self._json_body(request)
        key = request.headers.get("x-goog-api-key")
        match = _PATH.match(request.path) if request.method == "POST" else None
        generate = match is not None and match["method"] in ("generateContent", "streamGenerateContent")
        with self._cond:
            self._records.append(Recorded(request.method, request.path_qs,
                                          {k.lower(): v for k, v in request.headers.items()}, body, key,
                                          time.monotonic()))
            if generate:
                self._chat_count += 1
                if key is not None:
                    self._key_counts[key] = self._key_counts.get(key, 0) + 1
        if match is None:
            return _json({"error": {"code": 404, "message": f"Unknown {request.method} {request.path}",
                                    "status": "NOT_FOUND"}}, 404)
        if key is None:
            return _json({"error": {"code": 403, "message": "Method doesn't allow unregistered callers",
                                    "status": "PERMISSION_DENIED"}}, 403)
        if not isinstance(body, dict):
            return _json({"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}}, 400)
        beh = self._next_behaviour(key)
        if not isinstance(beh, GeminiBehaviour):
            beh = GeminiBehaviour(**{f: getattr(beh, f) for f in Behaviour.__dataclass_fields__})
        return await self._answer(request, match["model"], match["method"], body, beh)

    async def _answer(self, request: web.BaseRequest, model: str, method: str, body: dict[str, Any],
                      beh: GeminiBehaviour) -> web.StreamResponse:
        if beh.hang:
            while True:
                await asyncio.sleep(3600)
        if beh.delay_s > 0:
            await asyncio.sleep(beh.delay_s)
        if beh.body is not None:
            return _json(beh.body, beh.status, beh.headers)
        if beh.status >= 300:
            return _json(error_body(beh), beh.status, beh.headers)
        if method == "embedContent":
            return _json({"embedding": {"values": [0.1, 0.2, 0.3]}}, headers=beh.headers)
        if method == "batchEmbedContents":
            requests = body.get("requests") or []
            return _json({"embeddings": [{"values": [0.1 * (i + 1), 0.2, 0.3]} for i in range(len(requests))]},
                         headers=beh.headers)
        if method == "countTokens":
            inner = body.get("generateContentRequest")
            return _json({"totalTokens": prompt_tokens_of(inner if isinstance(inner, dict) else body)},
                         headers=beh.headers)
        if method == "streamGenerateContent":
            return await self._gemini_stream(request, model, body, beh)
        return _json(self._response(model, body, beh, self._parts(beh), True), headers=beh.headers)

    def _parts(self, beh: GeminiBehaviour) -> list[dict[str, Any]]:
        if beh.function_call is not None:
            return [{"functionCall": beh.function_call}]
        return [{"text": DEFAULT_TEXT if beh.text is None else beh.text}]

    def _gemini_usage(self, body: dict[str, Any], beh: GeminiBehaviour) -> dict[str, int]:
        prompt = prompt_tokens_of(body)
        out = len((DEFAULT_TEXT if beh.text is None else beh.text).split()) if beh.function_call is None else 5
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": out,
                 "totalTokenCount": prompt + out + beh.thoughts}
        if beh.thoughts:
            usage["thoughtsTokenCount"] = beh.thoughts
        if beh.cached:
            usage["cachedContentTokenCount"] = beh.cached
        return usage

    def _response(self, model: str, body: dict[str, Any], beh: GeminiBehaviour, parts: list[dict[str, Any]],
                  last: bool) -> dict[str, Any]:
        answer: dict[str, Any] = {"modelVersion": model, "responseId": f"fake{next(self._ids)}"}
        if beh.block_reason:
            answer["promptFeedback"] = {"blockReason": beh.block_reason}
        else:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = beh.finish_reason
            answer["candidates"] = [candidate]
        if beh.usage:
            partial = {"promptTokenCount": prompt_tokens_of(body)}
            answer["usageMetadata"] = self._gemini_usage(body, beh) if last else partial
        return answer

    async def _gemini_stream(self, request: web.BaseRequest, model: str, body: dict[str, Any],
                      beh: GeminiBehaviour) -> web.StreamResponse:
        if request.query.get("alt") != "sse":
            return _json({"error": {"code": 400, "message": "the fake streams only with alt=sse",
                                    "status": "INVALID_ARGUMENT"}}, 400)
        if beh.function_call is not None or beh.block_reason:
            pieces = [self._parts(beh)]
        else:
            text = DEFAULT_TEXT if beh.text is None else beh.text
            pieces = [[{"text": piece}] for piece in split_text(text, beh.chunks or 3)]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **beh.headers})
        try:
            await resp.prepare(request)
            for i, parts in enumerate(pieces):
                if beh.cut_after is not None and i >= beh.cut_after:
                    if request.transport is not None:
                        request.transport.abort()  # the connection drops before the finishReason
                    return resp
                if i and beh.chunk_delay_s > 0:
                    await asyncio.sleep(beh.chunk_delay_s)
                event = self._response(model, body, beh, parts, i == len(pieces) - 1)
                await resp.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()
        return resp
