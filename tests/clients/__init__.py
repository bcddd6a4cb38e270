"""The real npm clients the suite drives against the gateway (coding agents, the MCP Inspector),
pinned in ``tests/clients/package.json``.

``.ci/run`` installs them with ``npm ci`` into a cache directory named by the lock's hash and
exports ``GATEWAY_TEST_CLIENTS`` (that install's ``node_modules/.bin``). Without it the same cache
directory is looked for (``GATEWAY_CLIENTS_CACHE``, else ``~/.cache/gateway-test-clients``); install
it by hand with::

    d=~/.cache/gateway-test-clients/$(sha256sum tests/clients/package-lock.json | cut -c1-16)
    mkdir -p $d && cp tests/clients/package*.json $d && npm ci --prefix $d

A test that needs a client fails when ``CI=true`` and the client is missing, and is skipped otherwise.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def clients_bin() -> Path:
    """Where the agents' commands are: ``GATEWAY_TEST_CLIENTS``, else the cache ``.ci/run`` fills."""
    given = os.environ.get("GATEWAY_TEST_CLIENTS")
    if given:
        return Path(given)
    cache = os.environ.get("GATEWAY_CLIENTS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gateway-test-clients")
    digest = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()[:16]
    return Path(cache) / digest / "node_modules" / ".bin"


def client_binary(name: str) -> Path:
    """The path of the installed client ``name`` (``claude``, ``codex``, ``gemini``, ``mcp-inspector``);
    fails under CI, skips elsewhere, when it is missing."""
    path = clients_bin() / name
    if path.exists() and os.access(path, os.X_OK):
        return path
    message = f"the client '{name}' is not installed at {path} (.ci/run installs tests/clients/package.json)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
