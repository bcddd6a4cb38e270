"""Fixtures of the coding agents' tests (the agents are found as ``tests/clients/__init__.py`` says)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients import client_binary
from tests.conftest import MASTER_KEY, Gateway

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def agent() -> Callable[[str], Path]:
    """``agent("claude")``: the path of that agent's command (see ``tests/clients/__init__.py``)."""
    return client_binary


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
