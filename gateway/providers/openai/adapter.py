"""The OpenAI-compatible adapter (OpenAI and every preset that speaks its protocol)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson

from ...core.call import CHAT, COMPLETIONS, RESPONSES, Call
from ...core.ratelimit import retry_after_seconds
from ...core.request import UpstreamRequest
from ...core.usage import Answer
from ..base import OK, RATE_LIMITED, Verdict, classify_status, error_message_from
from .request import auth_headers, chat_body, request_headers, with_model
from .response import parse_answer
from .stream import StreamRelay
from .surface import SURFACE, ResponsesRelay, surface_answer, surface_request

if TYPE_CHECKING:
    from ...core.targets import ProviderKey, Target

_LIMIT_PREFIXES = (b"x-ratelimit-", b"retry-after")


def limit_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The rate-limit headers of an answer (``x-ratelimit-*``, ``retry-after``, ``retry-after-ms``), one pass."""
    found: dict[str, str] = {}
    for name, value in raw:
        lower = name.lower()
        if lower.startswith(_LIMIT_PREFIXES):
            found[lower.decode("latin-1")] = value.decode("latin-1")
    return found


class OpenAIAdapter:
    """Requests go out as they came (``model`` rewritten); answers and streams are already OpenAI's."""

    def build_request(self, target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
        if call.operation in SURFACE:
            return surface_request(target, key, call)
        streams = call.stream and call.operation in (CHAT, COMPLETIONS)
        headers = request_headers(target.provider, auth_headers(key), streams)
        body = chat_body(target, call.body, streams) if streams else with_model(target, call.body)
        return UpstreamRequest("POST", target.provider.api_root + call.path, headers, orjson.dumps(body),
                               shared_head=True)

    def parse_response(self, raw: bytes, call: Call) -> Answer:
        if call.operation in SURFACE:
            return surface_answer(raw, call)
        return parse_answer(raw, call.model, call.body)

    def stream_relay(self, call: Call) -> StreamRelay | ResponsesRelay:
        if call.operation == RESPONSES:
            return ResponsesRelay(call.model, call.body)
        return StreamRelay(call.model, call.wants_usage, call.body, keeps_model=not call.translated)

    def error_message(self, body: bytes, secret: str | None) -> str:
        return error_message_from(body, secret)

    def classify(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> Verdict:
        hints = limit_headers(headers)
        if status < 300:  # every answer passes here: the common case first
            return Verdict(OK, None, hints)
        kind = classify_status(status)
        return Verdict(kind, retry_after_seconds(hints) if kind == RATE_LIMITED else None, hints)
