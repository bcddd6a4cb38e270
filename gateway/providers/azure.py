"""Azure OpenAI: the OpenAI wire format, with deployments in the path and an ``api-key`` header.

The target's model is the deployment name. Responses and streams are translated by the
OpenAI adapter, since Azure answers in the same shape.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from ..config.snapshot import ProviderKey, Target
from ..upstream import UpstreamRequest
from .openai import chat_body, request_headers


def deployment_url(target: Target, path: str) -> str:
    spec = target.provider
    return (f"{spec.api_root}/openai/deployments/{quote(target.model, safe='')}{path}"
            f"?api-version={quote(spec.api_version or '', safe='')}")


def _auth(key: ProviderKey | None) -> dict[str, str]:
    return {"api-key": key.secret} if key is not None else {}


def build_chat_request(target: Target, key: ProviderKey | None, body: dict[str, Any], stream: bool,
                       path: str = "/chat/completions") -> UpstreamRequest:
    headers = request_headers(target.provider, _auth(key), stream)
    out = chat_body(target, body, stream)
    out.pop("model", None)
    return UpstreamRequest("POST", deployment_url(target, path), headers, orjson.dumps(out))


def build_passthrough_request(target: Target, key: ProviderKey | None, body: dict[str, Any],
                              path: str) -> UpstreamRequest:
    headers = request_headers(target.provider, _auth(key), False)
    out = dict(body)
    out.pop("model", None)
    return UpstreamRequest("POST", deployment_url(target, path), headers, orjson.dumps(out))
