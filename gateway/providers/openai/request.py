"""OpenAI-compatible requests: the body goes out nearly as it came in (only ``model`` changes).

For streams the gateway always asks the upstream for usage (``stream_options.include_usage``)
where the provider type accepts it; the relay strips the usage chunk again when the client did
not ask for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ...core.targets import ProviderKey, ProviderSpec, Target

# identity: a compressed answer costs CPU to decode and hides its size (decoded anyway if sent)
JSON_HEADERS = {"content-type": "application/json", "accept": "application/json", "accept-encoding": "identity"}


def auth_headers(key: ProviderKey | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"} if key is not None else {}


def chat_body(target: Target, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """A copy of ``body`` for ``target``: its model, and usage asked for when streaming."""
    out = dict(body)
    out["model"] = target.model
    if stream and target.provider.stream_usage:
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return out


def with_model(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with only ``model`` rewritten (embeddings, pass-through paths)."""
    out = dict(body)
    out["model"] = target.model
    return out


_HEADER_CACHE: dict[tuple[object, ...], httpx.Headers] = {}


def request_headers(provider: ProviderSpec, auth: dict[str, str], stream: bool) -> httpx.Headers:
    """Headers for one key of one provider, built once and shared (callers must not mutate them).

    An ``httpx.Headers`` object, because httpx copies one without normalising it again.
    """
    cache_key = (provider.id, provider.headers, tuple(auth.items()), stream)
    headers = _HEADER_CACHE.get(cache_key)
    if headers is None:
        if len(_HEADER_CACHE) > 4096:
            _HEADER_CACHE.clear()
        merged = dict(JSON_HEADERS)
        merged.update(provider.headers)
        merged.update(auth)
        if stream:
            merged["accept"] = "text/event-stream"
        headers = _HEADER_CACHE[cache_key] = httpx.Headers(merged)
    return headers
