"""A controllable fake OpenAI-compatible upstream server for tests and benchmarks.

In tests, run it in a background thread and script its answers::

    with FakeUpstream() as fake:
        fake.script(Behaviour(status=429, headers={"Retry-After": "1"}))
        ...  # point the gateway at fake.base_url
        assert fake.count() == 2

As a standalone process (for benchmarks)::

    python tests/fake_upstream.py --host 127.0.0.1 --port 0   # prints "READY <port>"

Scripted behaviours apply to chat completion and embedding requests only;
``GET /v1/models`` and unknown paths always answer normally.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import itertools
import json
import re
import signal
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

DEFAULT_TEXT = "Hello from the fake upstream"
DEFAULT_CHUNKS = 3
MIB = 1 << 20
MODELS = ("fake-gpt-4o", "fake-gpt-4o-mini", "fake-text-embedding-3-small")

_CHAT_RE = re.compile(r"^(?:/v1|/openai/deployments/(?P<dep>[^/]+))?/chat/completions$")
_EMB_RE = re.compile(r"^(?:/v1|/openai/deployments/(?P<dep>[^/]+))?/embeddings$")
_MODELS_PATHS = frozenset({"/v1/models", "/models"})


@dataclass
class Behaviour:
    """How the fake answers one request (or every request, when used as a default)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    body: dict[str, Any] | str | None = None  # verbatim body (JSON or text) instead of an answer
    delay_s: float = 0.0  # sleep before sending headers
    text: str | None = None  # answer text (default DEFAULT_TEXT)
    chunks: int | None = None  # number of stream content chunks (default DEFAULT_CHUNKS)
    chunk_delay_s: float = 0.0  # sleep between stream chunks
    cut_after: int | None = None  # streams: abort the TCP connection after this many events
    hang: bool = False  # never answer; wait until the client goes away
    usage: bool = True  # False: omit usage from all answers
    # whole (non-stream) answers:
    cut_body_after: int | None = None  # announce the whole length, send this many body bytes, abort
    body_bytes: int | None = None  # pad the answer to about this many bytes, sent in 1 MiB pieces
    declare_length: bool = False  # with body_bytes: send Content-Length (else chunked)
    # "gzip" | "deflate": compress the answer (whole or stream) whatever the client accepts;
    # any other value is only announced in Content-Encoding (the body stays plain)
    encoding: str | None = None
    ignore_stream: bool = False  # answer a stream request with a whole JSON completion
    # streams: about this many bytes of content events, made as they are sent (never held whole),
    # written in pieces of about 64 KiB; ``text`` is then each event's delta (default about 40
    # characters); ``chunks`` and ``cut_after`` do not apply
    stream_bytes: int | None = None
    # chat: function calls after the text ([{"name", "arguments": {...}, "id"?}]; the text defaults to
    # none then), finish_reason "tool_calls"; streamed as a name chunk and an arguments chunk each
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Recorded:
    """One request as received by the fake."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    json: Any  # parsed JSON body, or None
    api_key: str | None
    started_at: float  # time.monotonic()


def api_key_of(headers: Any) -> str | None:
    """Extract the API key from ``Authorization: Bearer``, ``api-key`` or ``x-api-key``."""
    auth = headers.get("Authorization")
    if auth and auth[:7].lower() == "bearer ":
        return str(auth[7:].strip())
    key = headers.get("api-key") or headers.get("x-api-key")
    return str(key) if key else None


def _words(value: Any) -> int:
    """Count whitespace-separated words in a string or a list of content parts."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(p.get("text", "") if isinstance(p, dict) else p) for p in value)
    return 0


def prompt_tokens_of(body: Any) -> int:
    """Deterministic prompt token count: words in all message contents + 3 per message."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return 0
    return sum(3 + _words(m.get("content")) for m in messages if isinstance(m, dict))


def split_text(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` contiguous pieces of near-equal length."""
    n = max(1, n)
    size = len(text)
    return [text[i * size // n : (i + 1) * size // n] for i in range(n)]


def _text_of(beh: Behaviour) -> str:
    """The answer's text: the scripted one; by default DEFAULT_TEXT, or none before tool calls."""
    if beh.text is not None:
        return beh.text
    return "" if beh.tool_calls else DEFAULT_TEXT


def _call_id(call: dict[str, Any], n: int) -> str:
    return str(call.get("id") or f"call_fake{n}")


def _arguments(call: dict[str, Any]) -> str:
    arguments = call.get("arguments", {})
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _error_body(message: str, status: int, etype: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": etype, "param": None, "code": str(status)}}


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return web.Response(status=status, body=json.dumps(data).encode(), headers=hdrs)


class FakeUpstream:
    """Fake OpenAI-compatible upstream, scriptable and thread-safe."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record: bool = True) -> None:
        self._host = host
        self._port = port
        self._record = record
        self._cond = threading.Condition()  # guards all mutable state below
        self._queue: deque[Behaviour] = deque()
        self._key_queues: dict[str, deque[Behaviour]] = {}
        self._default: Behaviour | None = None
        self._key_defaults: dict[str, Behaviour] = {}
        self._records: list[Recorded] = []
        self.surface = SurfaceFake()  # images, audio, moderations, responses, files, assistants, threads
        self._chat_count = 0
        self._key_counts: dict[str, int] = {}
        self._disconnects = 0
        self._body_bytes_sent = 0
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._closing = False
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def _astart(self) -> None:
        """Bind and start serving on the running loop; sets ``port``."""
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port, backlog=1024).start()
        self._port = int(self._runner.addresses[0][1])

    async def _astop(self) -> None:
        self._closing = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> Self:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # noqa: BLE001 - re-raised by start()
                failure.append(exc)
            ready.set()
            try:
                if not failure:
                    loop.run_forever()
            finally:
                loop.close()

        self._closing = False
        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving (cancelling pending requests) and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting
    def script(self, *behaviours: Behaviour, key: str | None = None) -> None:
        """Queue behaviours, consumed one per request (only by requests with ``key``, if given)."""
        with self._cond:
            queue = self._queue if key is None else self._key_queues.setdefault(key, deque())
            queue.extend(behaviours)

    def set_default(self, behaviour: Behaviour | None, key: str | None = None) -> None:
        """Set (or clear, with None) the persistent behaviour used when no queued one applies."""
        with self._cond:
            if key is None:
                self._default = behaviour
            elif behaviour is None:
                self._key_defaults.pop(key, None)
            else:
                self._key_defaults[key] = behaviour

    def reset(self) -> None:
        """Clear queues, defaults, records and counters."""
        with self._cond:
            self._queue.clear()
            self._key_queues.clear()
            self._default = None
            self._key_defaults.clear()
            self._records.clear()
            self._chat_count = 0
            self._key_counts.clear()
            self._disconnects = 0
            self._body_bytes_sent = 0
        self.surface.reset()

    def _next_behaviour(self, key: str | None) -> Behaviour:
        with self._cond:
            if key is not None and self._key_queues.get(key):
                return self._key_queues[key].popleft()
            if self._queue:
                return self._queue.popleft()
            if key is not None and key in self._key_defaults:
                return self._key_defaults[key]
            return self._default or Behaviour()

    # ------------------------------------------------------------------ inspection
    @property
    def requests(self) -> list[Recorded]:
        """Copy of all recorded requests (empty when ``record=False``)."""
        with self._cond:
            return list(self._records)

    def count(self, key: str | None = None) -> int:
        """Number of chat completion requests received (optionally only those with ``key``)."""
        with self._cond:
            return self._chat_count if key is None else self._key_counts.get(key, 0)

    @property
    def disconnects(self) -> int:
        """Requests whose client went away before the response was finished."""
        with self._cond:
            return self._disconnects

    def wait_for_disconnects(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` disconnects were seen; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._disconnects >= n, timeout=timeout)

    @property
    def body_bytes_sent(self) -> int:
        """Body bytes written for ``body_bytes`` answers (what reached the socket, about)."""
        with self._cond:
            return self._body_bytes_sent

    @property
    def in_flight(self) -> int:
        """Number of requests currently being handled."""
        with self._cond:
            return self._in_flight

    def _note_disconnect(self) -> None:
        if self._closing:
            return
        with self._cond:
            self._disconnects += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ serving
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        with self._cond:
            self._in_flight += 1
        try:
            return await self._dispatch(request)
        except asyncio.CancelledError:
            self._note_disconnect()
            raise
        finally:
            with self._cond:
                self._in_flight -= 1

    @staticmethod
    async def _json_body(request: web.BaseRequest) -> tuple[bytes, Any]:
        """The request's body, and its JSON (None when it has none or it is not JSON)."""
        raw = await request.read() if request.body_exists else b""
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, None

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path, method = request.path, request.method
        surface = await self.surface.handle(request)  # the rest of the OpenAI surface (section below)
        if surface is not None:
            return surface
        raw, body = await self._json_body(request)
        key = api_key_of(request.headers)
        chat = _CHAT_RE.match(path) if method == "POST" else None
        with self._cond:
            if self._record:
                self._records.append(
                    Recorded(method, path, {k.lower(): v for k, v in request.headers.items()},
                             body, key, time.monotonic())
                )
            if chat:
                self._chat_count += 1
                if key is not None:
                    self._key_counts[key] = self._key_counts.get(key, 0) + 1

        emb = _EMB_RE.match(path) if method == "POST" else None
        if method == "GET" and path in _MODELS_PATHS:
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                    for m in MODELS]
            return _json_response({"object": "list", "data": data})
        if not (chat or emb):
            return _json_response(_error_body(f"Unknown endpoint {method} {path}", 404), 404)
        if raw and not isinstance(body, dict):
            return _json_response(_error_body("Request body is not a JSON object", 400), 400)

        match = chat or emb
        assert match is not None
        model = str((body or {}).get("model") or match.group("dep") or "fake-model")
        return await self._scripted(request, body or {}, model, emb is not None, self._next_behaviour(key))

    async def _scripted(self, request: web.BaseRequest, body: dict[str, Any], model: str, embeddings: bool,
                        beh: Behaviour) -> web.StreamResponse:
        """The answer ``beh`` scripts for one chat or embeddings request."""
        if beh.hang:
            while True:  # until the client goes away (the handler is then cancelled)
                await asyncio.sleep(3600)
        if beh.delay_s > 0:
            await asyncio.sleep(beh.delay_s)
        if beh.body is not None:
            if isinstance(beh.body, str):
                headers = {"Content-Type": "text/plain; charset=utf-8", **beh.headers}
                return web.Response(status=beh.status, body=beh.body.encode(), headers=headers)
            return _json_response(beh.body, beh.status, beh.headers)
        if beh.status >= 300:
            msg = f"Fake upstream scripted error {beh.status}"
            etype = "rate_limit_error" if beh.status == 429 else "api_error"
            return _json_response(_error_body(msg, beh.status, etype), beh.status, beh.headers)
        if embeddings:
            return self._embeddings(body, model, beh)
        if body.get("stream") and not beh.ignore_stream:
            return await self._stream(request, body, model, beh)
        return await self._whole(request, self._completion(body, model, beh), beh)

    def _usage(self, body: dict[str, Any], text: str, calls: list[dict[str, Any]] | None = None) -> dict[str, int]:
        prompt = prompt_tokens_of(body)
        completion = len(text.split()) + sum(len(_arguments(c).split()) for c in calls or ())
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    def _completion(self, body: dict[str, Any], model: str, beh: Behaviour) -> dict[str, Any]:
        text = _text_of(beh)
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if beh.tool_calls else text)}
        if beh.tool_calls:
            message["tool_calls"] = [{"id": _call_id(c, n), "type": "function",
                                      "function": {"name": c["name"], "arguments": _arguments(c)}}
                                     for n, c in enumerate(beh.tool_calls)]
        answer: dict[str, Any] = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if beh.tool_calls else "stop"}],
        }
        if beh.usage:
            answer["usage"] = self._usage(body, text, beh.tool_calls)
        return answer

    async def _whole(self, request: web.BaseRequest, answer: dict[str, Any], beh: Behaviour) -> web.StreamResponse:
        """A whole JSON answer, as scripted: plain, compressed, cut short or padded to a size."""
        headers = {"Content-Type": "application/json", **beh.headers}
        if beh.body_bytes is not None:
            return await self._big(request, answer, beh, headers)
        raw = json.dumps(answer).encode()
        if beh.encoding:
            headers["Content-Encoding"] = beh.encoding
            raw = _compress(raw, beh.encoding)
        if beh.cut_body_after is None:
            return web.Response(status=beh.status, body=raw, headers=headers)
        resp = web.StreamResponse(status=beh.status, headers=headers)
        resp.content_length = len(raw)
        await resp.prepare(request)
        await resp.write(raw[:beh.cut_body_after])
        if request.transport is not None:
            request.transport.abort()  # the answer stops mid-body: the length promised is never met
        return resp

    async def _big(self, request: web.BaseRequest, answer: dict[str, Any], beh: Behaviour,
                   headers: dict[str, str]) -> web.StreamResponse:
        """``body_bytes`` of answer (before compression, if ``encoding``: a small gzip can be a bomb)."""
        size = beh.body_bytes or 0
        head = json.dumps(answer).encode()[:-1] + b', "pad": "'
        tail = b'"}'
        packer = _StreamPacker(beh.encoding)
        if beh.encoding:
            headers["Content-Encoding"] = beh.encoding
        resp = web.StreamResponse(status=beh.status, headers=headers)
        if beh.declare_length and not beh.encoding:
            resp.content_length = max(size, len(head) + len(tail))
        await resp.prepare(request)
        pieces = [head] + [b"x" * MIB] * max(0, (size - len(head) - len(tail)) // MIB)
        remainder = max(0, size - len(head) - len(tail)) % MIB
        try:
            for piece in [*pieces, b"x" * remainder, tail]:
                await resp.write(packer.pack(piece))
                with self._cond:
                    self._body_bytes_sent += len(piece)
            await resp.write(packer.end())
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()
        return resp

    def _embeddings(self, body: dict[str, Any], model: str, beh: Behaviour) -> web.Response:
        inputs = body.get("input", "")
        items = inputs if isinstance(inputs, list) else [inputs]
        answer: dict[str, Any] = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i in range(len(items))],
            "model": model,
        }
        if beh.usage:
            tokens = sum(_words(x) for x in items)
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _json_response(answer, beh.status, beh.headers)

    async def _stream(self, request: web.BaseRequest, body: dict[str, Any], model: str,
                      beh: Behaviour) -> web.StreamResponse:
        if beh.stream_bytes is not None:
            return await self._long_stream(request, body, model, beh)
        text = _text_of(beh)
        base = {"id": f"chatcmpl-fake{next(self._ids)}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}
        events: list[dict[str, Any]] = []
        for i, piece in enumerate(split_text(text, beh.chunks or DEFAULT_CHUNKS) if text else []):
            delta: dict[str, Any] = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        for n, call in enumerate(beh.tool_calls):
            named = {"index": n, "id": _call_id(call, n), "type": "function",
                     "function": {"name": call["name"], "arguments": ""}}
            for delta in ({"tool_calls": [named]}, {"tool_calls": [{"index": n, "function": {
                    "arguments": _arguments(call)}}]}):
                events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        finish = "tool_calls" if beh.tool_calls else "stop"
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        opts = body.get("stream_options")
        if beh.usage and isinstance(opts, dict) and opts.get("include_usage"):
            events.append({**base, "choices": [], "usage": self._usage(body, text, beh.tool_calls)})

        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **beh.headers}
        packer = _StreamPacker(beh.encoding)
        if beh.encoding:
            headers["Content-Encoding"] = beh.encoding
        resp = web.StreamResponse(status=beh.status, headers=headers)
        try:
            await resp.prepare(request)
            for i, event in enumerate(events):
                if beh.cut_after is not None and i >= beh.cut_after:
                    break
                if i and beh.chunk_delay_s > 0:
                    await asyncio.sleep(beh.chunk_delay_s)
                await resp.write(packer.pack(b"data: " + json.dumps(event).encode() + b"\n\n"))
            if beh.cut_after is not None:
                if request.transport is not None:
                    request.transport.abort()  # abrupt close: no terminator, no [DONE]
                return resp
            await resp.write(packer.pack(b"data: [DONE]\n\n") + packer.end())
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()
        return resp


    async def _long_stream(self, request: web.BaseRequest, body: dict[str, Any], model: str,
                           beh: Behaviour) -> web.StreamResponse:
        """``stream_bytes`` of content events (each one the delta ``text``), then the finish event,
        the usage chunk (when asked for) and ``[DONE]``, made piece by piece."""
        base = {"id": f"chatcmpl-fake{next(self._ids)}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}
        delta = beh.text or "lorem ipsum dolor sit amet consectetur "
        event = b"data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": delta},
                                                                    "finish_reason": None}]}).encode() + b"\n\n"
        per_piece = max(1, (64 << 10) // len(event))
        count = max(1, (beh.stream_bytes or 0) // len(event))
        tail = [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        opts = body.get("stream_options")
        if beh.usage and isinstance(opts, dict) and opts.get("include_usage"):
            prompt, completion = prompt_tokens_of(body), count * len(delta.split())
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            tail.append({**base, "choices": [], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **beh.headers})
        try:
            await resp.prepare(request)
            for start in range(0, count, per_piece):
                piece = event * min(per_piece, count - start)
                await resp.write(piece)
                with self._cond:
                    self._body_bytes_sent += len(piece)
            await resp.write(b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in tail)
                             + b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()
        return resp


def _compress(raw: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(raw)
    if encoding == "deflate":
        return zlib.compress(raw)
    return raw  # announced only


class _StreamPacker:
    """Compresses a stream event by event (each flushed, so the client can decode it at once)."""

    def __init__(self, encoding: str | None) -> None:
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding or "")
        self._z = zlib.compressobj(wbits=wbits) if wbits is not None else None

    def pack(self, data: bytes) -> bytes:
        if self._z is None:
            return data
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        return self._z.flush() if self._z is not None else b""


# ====================================================================================================
# The rest of the OpenAI surface: images, audio, moderations, responses, files,
# assistants, threads. Objects live in the account of the key that created them: another key asking
# for one gets a 404, as OpenAI answers, which is what the gateway's affinity must avoid.
# ====================================================================================================

SURFACE_TEXT = "fake transcript of the audio"
SPEECH_CHUNKS = 4
_SURFACE_RE = re.compile(r"^/v1/(images/generations|moderations|audio/(?:speech|transcriptions|translations)|responses"
                         r"|files|assistants|threads)(/.*)?$")
_FORM_FIELD = re.compile(rb'name="([^"]+)"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r]{0,256})\r\n--')


@dataclass(frozen=True)
class SurfaceCall:
    """One request to the rest of the surface, as the fake received it."""

    method: str
    path: str
    query: str
    api_key: str | None
    headers: dict[str, str]
    json: Any  # the JSON body, or None
    body_sha256: str  # of the raw body
    body_size: int
    form: dict[str, str]  # a multipart body's short text fields


# The fake's moderation: an input holding "flag:<category>" is flagged in that category (score 0.97);
# every other category scores 0.01, except "harassment", which scores 0.4 on any input holding "rude".
MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")


def moderation_result(text: str) -> dict[str, Any]:
    scores = {c: 0.97 if f"flag:{c}" in text else 0.4 if c == "harassment" and "rude" in text else 0.01
              for c in MODERATION_CATEGORIES}
    flags = {c: score > 0.5 for c, score in scores.items()}
    return {"flagged": any(flags.values()), "categories": flags, "category_scores": scores}


def _moderation_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, list):
        return [v if isinstance(v, str) else str(v.get("text", "")) if isinstance(v, dict) else "" for v in value]
    return [value if isinstance(value, str) else ""]


def speech_bytes(text: str) -> bytes:
    """The fake's "audio" for ``text``: deterministic bytes, about 64 KiB."""
    seed = hashlib.sha256(text.encode()).digest()
    return b"ID3" + seed * 2048


class SurfaceFake:
    """The fake's answers for the rest of the surface (see the section comment)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[SurfaceCall] = []
        self.objects: dict[str, tuple[str | None, dict[str, Any]]] = {}  # id -> (key that created it, object)
        self.file_bytes: dict[str, bytes] = {}
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.speech_delay_s = 0.0
        # False: responses streams as ``data:`` lines only (the kind in the JSON's "type", no ``event:``
        # line), as several OpenAI-compatible servers send them
        self.responses_event_lines = True
        # scripted Responses answers, one per /v1/responses request: (output items, usage details);
        # a request finding none gets one message with DEFAULT_TEXT
        self.responses_script: deque[tuple[list[dict[str, Any]], dict[str, int]]] = deque()
        self.responses_linger_s = 0.0  # a Responses stream stays open this long after its last event
        self._ids = itertools.count(1)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.objects.clear()
            self.file_bytes.clear()
            self.failures.clear()
            self.speech_delay_s = 0.0
            self.responses_event_lines = True
            self.responses_script.clear()
            self.responses_linger_s = 0.0

    def script_responses(self, *outputs: list[dict[str, Any]], cached_tokens: int = 0,
                         reasoning_tokens: int = 0) -> None:
        """The next ``/v1/responses`` requests answer these output items (one list per request), their
        usage reporting ``cached_tokens`` and ``reasoning_tokens`` (parts of the input and output)."""
        with self._lock:
            for output in outputs:
                self.responses_script.append((output, {"cached_tokens": cached_tokens,
                                                       "reasoning_tokens": reasoning_tokens}))

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        """The next surface request is answered ``status`` (after its body was read)."""
        with self._lock:
            self.failures.append((status, headers or {}))

    def calls_to(self, path_prefix: str) -> list[SurfaceCall]:
        with self._lock:
            return [c for c in self.calls if c.path.startswith(path_prefix)]

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse | None:
        match = _SURFACE_RE.match(request.path)
        if match is None:
            return None
        raw = await request.content.read()  # no size limit: uploads of tens of MB
        body: Any = None
        if raw and request.content_type == "application/json":
            body = json.loads(raw)
        form = {m.group(1).decode(): m.group(2).decode() for m in _FORM_FIELD.finditer(raw[:1 << 16])}
        key = api_key_of(request.headers)
        call = SurfaceCall(request.method, request.path, request.query_string, key,
                           {k.lower(): v for k, v in request.headers.items()}, body,
                           hashlib.sha256(raw).hexdigest(), len(raw), form)
        with self._lock:
            self.calls.append(call)
            failure = self.failures.popleft() if self.failures else None
        if failure is not None:
            return _json_response(_error_body("Fake upstream scripted error", failure[0], "rate_limit_error"),
                                  failure[0], failure[1])
        family, rest = match.group(1), match.group(2) or ""
        if family in ("files", "assistants", "threads"):
            return self._stateful(request, call, raw, family, rest)
        return await self._stateless(request, call, family)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    async def _stateless(self, request: web.BaseRequest, call: SurfaceCall, family: str) -> web.StreamResponse:
        body = call.json if isinstance(call.json, dict) else {}
        model = body.get("model") or call.form.get("model")
        if family == "images/generations":
            n = int(body.get("n") or 1)
            answer: dict[str, Any] = {"created": int(time.time()),
                                      "data": [{"url": f"https://fake.example/img/{i}.png"} for i in range(n)]}
            if str(model).startswith("gpt-image"):
                answer["usage"] = {"input_tokens": 10, "output_tokens": 100 * n, "total_tokens": 10 + 100 * n}
            return _json_response(answer)
        if family == "moderations":
            return _json_response({"id": self._new_id("modr-"), "model": model or "omni-moderation-latest",
                                   "results": [moderation_result(text) for text in _moderation_inputs(body)]})
        if family == "audio/speech":
            return await self._speech(request, str(body.get("input") or ""))
        if family.startswith("audio/"):
            if call.form.get("response_format") == "text":
                return web.Response(body=SURFACE_TEXT.encode(), content_type="text/plain")
            return _json_response({"text": SURFACE_TEXT, "usage": {"type": "tokens", "input_tokens": 50,
                                                                   "output_tokens": 6, "total_tokens": 56}})
        return await self._responses(request, body)

    async def _speech(self, request: web.BaseRequest, text: str) -> web.StreamResponse:
        audio = speech_bytes(text)
        resp = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        for piece in split_bytes(audio, SPEECH_CHUNKS):
            await resp.write(piece)
            if self.speech_delay_s:
                await asyncio.sleep(self.speech_delay_s)
        await resp.write_eof()
        return resp

    def _response_object(self, body: dict[str, Any], status: str, output: list[dict[str, Any]],
                         details: dict[str, int]) -> dict[str, Any]:
        done = status == "completed"
        return {"id": "resp_fake1", "object": "response", "created_at": int(time.time()), "status": status,
                "model": body.get("model"), "output": output if done else [],
                "usage": responses_usage(body, output, details) if done else None,
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
                "incomplete_details": None, "instructions": body.get("instructions"), "metadata": {}}

    def _next_output(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        with self._lock:
            if self.responses_script:
                return self.responses_script.popleft()
        message = {"type": "message", "id": "msg_fake1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": DEFAULT_TEXT, "annotations": []}]}
        return [message], {"cached_tokens": 0, "reasoning_tokens": 0}

    async def _responses(self, request: web.BaseRequest, body: dict[str, Any]) -> web.StreamResponse:
        output, details = self._next_output()
        if not body.get("stream"):
            return _json_response(self._response_object(body, "completed", output, details))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": self._response_object(body, "in_progress", output, details)})]
        for index, item in enumerate(output):
            events += _item_events(index, item)
        events.append(("response.completed", {"response": self._response_object(body, "completed", output, details)}))
        for n, (kind, data) in enumerate(events):
            payload = json.dumps({"type": kind, "sequence_number": n, **data})
            head = f"event: {kind}\n" if self.responses_event_lines else ""
            await resp.write(f"{head}data: {payload}\n\n".encode())
        if self.responses_linger_s:
            await asyncio.sleep(self.responses_linger_s)
        await resp.write_eof()
        return resp

    def _stateful(self, request: web.BaseRequest, call: SurfaceCall, raw: bytes, family: str,
                  rest: str) -> web.Response:
        parts = [p for p in rest.split("/") if p]
        if parts and parts[0] != "runs":
            owner = self.objects.get(parts[0])
            if owner is None or owner[0] != call.api_key:  # another account's object does not exist here
                return _json_response(_error_body(f"No such object: {parts[0]}", 404), 404)
        if request.method == "DELETE" and len(parts) == 1:
            with self._lock:
                self.objects.pop(parts[0], None)
            return _json_response({"id": parts[0], "object": family.rstrip("s"), "deleted": True})
        if request.method == "GET" and family == "files" and parts[1:] == ["content"]:
            return web.Response(body=self.file_bytes.get(parts[0], b""), content_type="application/octet-stream")
        if request.method == "GET" and len(parts) in (1, 3):  # /threads/t/runs/r: the object is the last id
            found = self.objects.get(parts[-1])
            if found is None or found[0] != call.api_key:
                return _json_response(_error_body(f"No such object: {parts[-1]}", 404), 404)
            return _json_response(found[1])
        if request.method == "GET":
            listed = [o for k, o in self.objects.values() if k == call.api_key and _belongs(o, family, parts)]
            return _json_response({"object": "list", "data": listed})
        return _json_response(self._create(call, raw, family, parts))

    def _create(self, call: SurfaceCall, raw: bytes, family: str, parts: list[str]) -> dict[str, Any]:
        body = call.json if isinstance(call.json, dict) else {}
        kinds = {"files": ("file-", "file"), "assistants": ("asst_", "assistant"), "threads": ("thread_", "thread")}
        prefix, kind = kinds[family]
        extra: dict[str, Any] = {}
        if family == "threads" and parts[1:2] == ["messages"]:
            prefix, kind, extra = "msg_", "thread.message", {"thread_id": parts[0], "role": body.get("role"),
                                                             "content": body.get("content")}
        elif family == "threads" and "runs" in parts:
            prefix, kind = "run_", "thread.run"
            extra = {"thread_id": parts[0] if parts[0] != "runs" else self._new_id("thread_"),
                     "assistant_id": body.get("assistant_id"), "status": "queued"}
        elif family == "assistants":
            extra = {"model": body.get("model"), "name": body.get("name")}
        elif family == "files":
            extra = {"purpose": call.form.get("purpose"), "bytes": call.body_size}
        obj = {"id": self._new_id(prefix), "object": kind, "created_at": int(time.time()), **extra}
        with self._lock:
            self.objects[obj["id"]] = (call.api_key, obj)
            if "thread_id" in extra and extra["thread_id"] not in self.objects:
                self.objects[extra["thread_id"]] = (call.api_key, {"id": extra["thread_id"], "object": "thread"})
            if family == "files":
                self.file_bytes[obj["id"]] = raw
        return obj


def responses_usage(body: dict[str, Any], output: list[dict[str, Any]], details: dict[str, int]) -> dict[str, Any]:
    """The fake's Responses usage: the words of the input (messages, call arguments and outputs) in,
    the words of the output items (plus the reasoning tokens scripted) out."""
    inputs = _words(body.get("input")) if isinstance(body.get("input"), str) else _input_words(body.get("input"))
    outputs = sum(_words(item.get("arguments") or item.get("input") or "") if "call" in item["type"]
                  else _words(item.get("content") or "") for item in output) + details["reasoning_tokens"]
    return {"input_tokens": inputs, "output_tokens": outputs, "total_tokens": inputs + outputs,
            "input_tokens_details": {"cached_tokens": details["cached_tokens"]},
            "output_tokens_details": {"reasoning_tokens": details["reasoning_tokens"]}}


def _input_words(items: Any) -> int:
    """The words of a Responses ``input`` list: message texts, call arguments and outputs."""
    total = 0
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            total += _words(item.get("content")) + _words(item.get("output")) + _words(item.get("arguments"))
    return total


def _item_events(index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events that stream one output item, as OpenAI sends them."""
    where = {"output_index": index}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        events = [("response.output_item.added", {**where, "item": {**item, "status": "in_progress", "content": []}}),
                  ("response.content_part.added", {**ids, "part": {"type": "output_text", "text": ""}})]
        events += [("response.output_text.delta", {**ids, "delta": piece}) for piece in split_text(text, 3)]
        events += [("response.output_text.done", {**ids, "text": text}),
                   ("response.content_part.done", {**ids, "part": item["content"][0]})]
    elif item["type"] == "function_call":
        events = [("response.output_item.added", {**where, "item": {**item, "arguments": "", "status": "in_progress"}}),
                  ("response.function_call_arguments.delta", {**where, "item_id": item["id"],
                                                              "delta": item["arguments"]}),
                  ("response.function_call_arguments.done", {**where, "item_id": item["id"],
                                                             "arguments": item["arguments"]})]
    else:
        events = [("response.output_item.added", {**where, "item": item})]
    return [*events, ("response.output_item.done", {**where, "item": item})]


def _belongs(obj: dict[str, Any], family: str, parts: list[str]) -> bool:
    if family != "threads":
        return bool(obj["object"] == family.rstrip("s"))
    kind = {"messages": "thread.message", "runs": "thread.run"}.get(parts[1] if len(parts) > 1 else "", "thread")
    return bool(obj["object"] == kind and (len(parts) < 2 or obj.get("thread_id") == parts[0]))


def split_bytes(data: bytes, n: int) -> list[bytes]:
    size = len(data)
    return [data[i * size // n : (i + 1) * size // n] for i in range(n)]


def main(argv: list[str] | None = None) -> None:
    """Run the fake upstream in the foreground until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="record every request")
    parser.add_argument("--delay-s", type=float, default=0.0, help="default delay per request")
    parser.add_argument("--chunks", type=int, default=None, help="default stream chunks")
    parser.add_argument("--chunk-delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeUpstream(args.host, args.port, record=args.record)
    fake.set_default(Behaviour(delay_s=args.delay_s, chunks=args.chunks,
                               chunk_delay_s=args.chunk_delay_s))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await fake._astart()
        print(f"READY {fake.port}", flush=True)
        await stop.wait()
        await fake._astop()

    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
