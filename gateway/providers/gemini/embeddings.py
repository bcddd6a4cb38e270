"""OpenAI embeddings ↔ Gemini ``embedContent`` (one input) and ``batchEmbedContents`` (a list of inputs).

``dimensions`` → ``outputDimensionality``. Answers come back in OpenAI's list shape, as floats or (when
the client asked for ``encoding_format: base64``, as the OpenAI SDK does by default) as base64 of
little-endian float32. Gemini reports no usage here: the input is counted locally.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from ...core.tokens import estimate_tokens
from ...core.usage import Answer, Usage
from ...errors import InvalidRequest


def texts_of(body: dict[str, Any]) -> str | list[str]:
    """The input: one text, or a list of texts (token arrays are OpenAI-only)."""
    value = body.get("input")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequest("Gemini embeds text: 'input' must be a string or an array of strings.", param="input")


def is_batch(body: dict[str, Any]) -> bool:
    return isinstance(body.get("input"), list)


def embed_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The ``embedContent`` body (one text) or the ``batchEmbedContents`` body (a list)."""
    texts = texts_of(body)
    extra: dict[str, Any] = {}
    if isinstance(body.get("dimensions"), int):
        extra["outputDimensionality"] = body["dimensions"]
    if isinstance(texts, str):
        return {"content": {"parts": [{"text": texts}]}, **extra}
    return {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}, **extra} for t in texts]}


def _encoded(values: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def parse_embeddings(raw: bytes, requested_model: str, request_body: dict[str, Any]) -> Answer:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the upstream answer is not a JSON object")
    if isinstance(data.get("embeddings"), list):
        items = data["embeddings"]
    elif isinstance(data.get("embedding"), dict):
        items = [data["embedding"]]
    else:
        raise ValueError("the upstream answer holds no embeddings")
    as_base64 = request_body.get("encoding_format") == "base64"
    vectors = []
    for i, item in enumerate(items):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise ValueError("an embedding without values")
        vectors.append({"object": "embedding", "index": i, "embedding": _encoded(values, as_base64)})
    texts = request_body.get("input")
    prompt = sum(estimate_tokens(t) for t in (texts if isinstance(texts, list) else [texts]) if isinstance(t, str))
    usage = Usage(prompt, 0, exact=False)
    return Answer({"object": "list", "data": vectors, "model": requested_model,
                   "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}, usage)
