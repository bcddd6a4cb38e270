"""The real npm clients the tests drive (MCP Inspector, Claude Code), found where ``.ci/run`` installs
them: ``npm ci`` of ``tests/clients/package-lock.json`` into
``${XDG_CACHE_HOME:-~/.cache}/llm-gateway-tests/npm-<first 16 hex of the lock's SHA-256>``.

Outside CI a test that needs a missing client is skipped (``LLM_GATEWAY_TEST_CLIENTS`` may name
another ``node_modules`` parent directory); under ``CI=true`` it fails: CI must install them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parent / "clients" / "package-lock.json"


def clients_dir() -> Path:
    override = os.environ.get("LLM_GATEWAY_TEST_CLIENTS")
    if override:
        return Path(override)
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llm-gateway-tests" / f"npm-{digest}"


def client_binary(name: str) -> Path:
    """``node_modules/.bin/<name>`` of the installed clients; fails under CI, skips elsewhere, when missing."""
    found = clients_dir() / "node_modules" / ".bin" / name
    if found.exists():
        return found
    message = f"{name} is not installed in {clients_dir()} (.ci/run installs tests/clients/package.json)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
