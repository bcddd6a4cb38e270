"""The OpenAI endpoints' bodies: checked, and turned into the pipeline's ``Call``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...core.call import CHAT, COMPLETIONS, EMBEDDINGS, Call
from ...errors import InvalidRequest

MAX_MODEL_CHARS = 256


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # the operation, and the endpoint's name in the access log
    path: str
    required: str  # the body field it cannot do without
    streams: bool


CHAT_ENDPOINT = Endpoint(CHAT, "/chat/completions", "messages", True)
COMPLETIONS_ENDPOINT = Endpoint(COMPLETIONS, "/completions", "prompt", True)
EMBEDDINGS_ENDPOINT = Endpoint(EMBEDDINGS, "/embeddings", "input", False)


def parse_call(body: dict[str, Any], endpoint: Endpoint) -> Call:
    """The checked body as a ``Call``; ``InvalidRequest`` (400) naming the field that is wrong."""
    model = model_of(body)
    value = body.get(endpoint.required)
    if value is None:
        raise InvalidRequest(f"The '{endpoint.required}' field is required.", param=endpoint.required)
    if endpoint.name == CHAT:
        _check_messages(value)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    if stream and not endpoint.streams:
        raise InvalidRequest(f"Streaming is not available for {endpoint.path}.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    for name in ("max_tokens", "max_completion_tokens"):
        count = body.get(name)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise InvalidRequest(f"'{name}' must be a positive integer.", param=name)
    wants_usage = options is not None and options.get("include_usage") is True
    return Call(endpoint.name, endpoint.path, body, model, stream is True, wants_usage)


def model_of(body: dict[str, Any]) -> str:
    """The body's ``model``: a non-empty string of at most ``MAX_MODEL_CHARS`` (every dialect's check)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("The 'model' field is required and must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"'model' is longer than {MAX_MODEL_CHARS} characters.", param="model")
    return model


def _check_messages(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{i}] must be an object with a 'role'.", param=f"messages[{i}]")
