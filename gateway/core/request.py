"""The request an adapter builds and the upstream client sends."""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]  # an httpx.Headers from the adapters
    content: bytes
    body_stream: AsyncIterable[bytes] | None = None  # sent instead of ``content``: an upload streamed through
    # ``headers`` is one object shared by every request with this method and URL (the adapters keep
    # one per provider key): the lean transport joins and checks the head once (``send_bytes``)
    shared_head: bool = False
