"""The coding agents the suite runs against the gateway (pinned in ``tests/clients/package.json``).

``.ci/run`` installs them with ``npm ci`` into a cache directory named by the lock's hash and
exports ``GATEWAY_TEST_CLIENTS`` (that install's ``node_modules/.bin``). Without it the same cache
directory is looked for (``GATEWAY_CLIENTS_CACHE``, else ``~/.cache/gateway-test-clients``); install
it by hand with::

    d=~/.cache/gateway-test-clients/$(sha256sum tests/clients/package-lock.json | cut -c1-16)
    mkdir -p $d && cp tests/clients/package*.json $d && npm ci --prefix $d

A test that needs an agent fails when ``CI=true`` and the agent is missing, and is skipped otherwise.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway

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


@pytest.fixture(scope="session")
def agent() -> Callable[[str], Path]:
    """``agent("claude")``: the path of that agent's command (see the module docstring)."""

    def find(name: str) -> Path:
        path = clients_bin() / name
        if path.exists() and os.access(path, os.X_OK):
            return path
        message = f"the coding agent '{name}' is not installed at {path} (see tests/clients/conftest.py)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    return find


def ledger_rows(gateway: Gateway, n: int, model: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The ``n`` newest ledger rows of ``model`` (oldest first), once that many were written (in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(gateway.base_url + "/admin/v1/requests/recent", params={"limit": 200},
                           headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
        answer.raise_for_status()
        rows = [row for row in answer.json()["requests"] if row["model"] == model]
        if len(rows) >= n:
            return list(reversed(rows[:n]))
        assert time.monotonic() < deadline, f"the ledger holds {len(rows)} rows of {model}, not {n}"
        time.sleep(0.05)
