"""Snapshots with guardrails, built from config text the way the gateway builds them."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.config.loader import parse_config
from gateway.config.snapshot import Snapshot, build_snapshot
from gateway.guardrails.engine import RequestGuard
from gateway.guardrails.remote import Remote

PROVIDER_KEY = "sk-gateway-own-provider-key-0001"
PROVIDERS = f"""
llm_providers:
  - {{id: openai-prod, type: openai, base_url: "http://127.0.0.1:9/v1", api_keys: ["{PROVIDER_KEY}"],
      models: [gpt-4o, omni-moderation-latest]}}
"""


def snapshot(text: str, env: dict[str, str] | None = None, providers: str = PROVIDERS) -> Snapshot:
    return build_snapshot(parse_config((providers + text).encode(), "c.yaml", env or {}), "c.yaml")


def line(text: str, needle: str, providers: str = PROVIDERS) -> int:
    """The line of the file (``providers`` then ``text``) where ``needle`` first appears."""
    source = providers + text
    return source[:source.index(needle)].count("\n") + 1


def guard_for(text: str, alias: str | None = None, remote: Remote | None = None) -> RequestGuard:
    """The request guard of a request for ``alias`` with no client, under config ``text``."""
    return snapshot(text).guardrails.for_request(alias, None, remote)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def one_guard(kind: str, action: str = "mask", on: str = "both", extra: str = "") -> str:
    """Config with one guard ``g`` applied to every request."""
    return f"""
guardrails:
  default: [g]
  guards:
    - {{name: g, type: {kind}, on: {on}, action: {action}{", " + extra if extra else ""}}}
"""
