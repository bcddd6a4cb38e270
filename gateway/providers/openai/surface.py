"""The rest of OpenAI's surface on OpenAI-compatible upstreams, passed through as it came.

Images, audio, moderations, responses, files, assistants and threads: the
request goes to ``Call.path`` under the provider's root with the client's method, query string,
``OpenAI-Beta`` header and body (a JSON body with only ``model`` replaced by the target's, or an
upload streamed through byte for byte). Answers are read only for their usage; a responses
stream is relayed event by event, its usage read from ``response.completed`` (the kind of an event
is its JSON ``type``, with or without ``event:`` lines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import orjson

from ...core.call import ASSISTANTS, AUDIO, FILES, IMAGES, MODERATIONS, RESPONSES, THREADS, Call
from ...core.request import UpstreamRequest
from ...core.sse import Event, SSEDecoder, data_object
from ...core.tokens import estimate_tokens, tokens_for_chars
from ...core.usage import Answer, Usage
from .request import auth_headers, request_headers
from .response import usage_from

if TYPE_CHECKING:
    from ...core.targets import ProviderKey, Target

SURFACE = frozenset({IMAGES, AUDIO, MODERATIONS, RESPONSES, FILES, ASSISTANTS, THREADS})
STATEFUL = frozenset({FILES, ASSISTANTS, THREADS})
_BINARY = frozenset({AUDIO, FILES})  # answers that may be audio or a file's bytes
_FINAL = frozenset({b"response.completed", b"response.failed", b"response.incomplete", b"error"})
_WITH_RESPONSE = frozenset({b"response.created", b"response.in_progress", *_FINAL})


def surface_request(target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
    """The upstream request for one call of the rest of the surface (see the module docstring)."""
    provider = target.provider
    url = provider.api_root + call.path + (f"?{call.query}" if call.query else "")
    headers = dict(request_headers(provider, auth_headers(key), call.stream))
    headers.update(call.headers)
    if call.operation in _BINARY and not call.stream:
        headers["accept"] = "*/*"
    if call.upload is not None:
        headers["content-type"] = call.upload.content_type
        if call.upload.length is not None:
            headers["content-length"] = str(call.upload.length)
        return UpstreamRequest(call.method, url, httpx.Headers(headers), b"", call.upload.chunks())
    if call.method != "POST":
        headers.pop("content-type", None)
        return UpstreamRequest(call.method, url, httpx.Headers(headers), b"")
    body = call.body
    if isinstance(body.get("model"), str):
        body = {**body, "model": target.model}
    return UpstreamRequest("POST", url, httpx.Headers(headers), orjson.dumps(body))


def surface_answer(raw: bytes, call: Call) -> Answer:
    """A whole JSON answer with its usage (0 tokens where it names none); ValueError if not JSON."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the upstream answer is not a JSON object")
    stateful = call.operation in STATEFUL
    if not stateful and isinstance(data.get("model"), str):
        data["model"] = call.model
    usage = usage_from(data) or Usage(0, 0, exact=stateful)
    return Answer(data, usage)


class ResponsesRelay:
    """Relays a ``/responses`` stream event by event (a ``Relay``): ``response.*`` events pass as
    they came, those carrying the response get its ``model`` set to what the client asked for, and
    the usage is read from ``response.completed``.

    An event's kind is the ``type`` of its JSON, as the SDKs read it; the ``event:`` line is
    optional framing (several OpenAI-compatible servers send ``data:`` lines only) and names the
    kind only of an event whose data has no ``type``. The framing is relayed as it came."""

    def __init__(self, requested_model: str, request_body: dict[str, Any]):
        self.requested_model = requested_model
        self.request_body = request_body
        self.done = False
        self.usage: Usage | None = None
        self._decoder = SSEDecoder()
        self._chars = 0  # characters of output text relayed (for a local estimate; the text is not kept)

    def feed(self, chunk: bytes) -> list[bytes]:
        return [out for out in (self._event(event) for event in self._decoder.feed(chunk)) if out is not None]

    def _event(self, event: Event) -> bytes | None:
        name, data = event.name, event.data
        if not data:
            return None  # an event with a name and no data
        parsed = data_object(data)
        kind = parsed.get("type") if parsed is not None else None
        kind = kind.encode() if isinstance(kind, str) else name
        if kind in _FINAL:
            self.done = True
        if parsed is not None and kind == b"response.output_text.delta":
            self._collect(parsed)
        elif parsed is not None and kind in _WITH_RESPONSE:
            data = self._with_model(parsed, data, kind == b"response.completed")
        head = b"event: " + name + b"\n" if name else b""
        return head + b"data: " + data + b"\n\n"

    def _with_model(self, parsed: dict[str, Any], data: bytes, completed: bool) -> bytes:
        response = parsed.get("response")
        if not isinstance(response, dict):
            return data
        if completed:
            self.usage = usage_from(response)
        if isinstance(response.get("model"), str):
            response["model"] = self.requested_model
        return orjson.dumps(parsed)

    def _collect(self, parsed: dict[str, Any]) -> None:
        delta = parsed.get("delta")
        if isinstance(delta, str):
            self._chars += len(delta)

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        prompt = self.request_body.get("input")
        return Usage(estimate_tokens(prompt if isinstance(prompt, str) else str(prompt)),
                     tokens_for_chars(self._chars), exact=False)


