"""Fixtures of the coding agents' tests (the agents are found as ``tests/clients/__init__.py`` says)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients import client_binary
from tests.conftest import MASTER_KEY, Gateway

HERE = Path(__file__).resolve().parent

# Each agent's turn: the upstream asks for a file the test wrote, then answers with what it says.
SECRET = "The secret word is PINEAPPLE-42."
ANSWER = "The file says the secret word is PINEAPPLE-42."
PRICES = {"input": 3.0, "output": 15.0, "cache_read": 0.3}  # USD per 1K tokens, every provider
PRICING = (f"{{input_token_cost: {PRICES['input']}, output_token_cost: {PRICES['output']}, "
           f"cache_read_token_cost: {PRICES['cache_read']}}}")  # a provider's pricing in config.yaml


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


def agent_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh working directory holding ``secret.txt``, and a throwaway ``HOME``."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / "secret.txt").write_text(SECRET + "\n")
    return work, home


def finished(done: subprocess.CompletedProcess[str], name: str, gateway: Gateway) -> str:
    """An agent's run that must have exited 0 (else its output and the gateway's log say why); its stdout."""
    assert done.returncode == 0, f"{name} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}\n" \
                                 f"gateway log:\n{gateway.logs()[-3000:]}"
    return done.stdout


def cost(tokens_in: int, tokens_out: int, cached: int = 0) -> float:
    return ((tokens_in - cached) * PRICES["input"] + cached * PRICES["cache_read"]
            + tokens_out * PRICES["output"]) / 1000


def check_ledger(gateway: Gateway, model: str, expected: list[tuple[int, int]], cached: int = 0) -> None:
    """The ledger's rows for ``model``: each with the (input, output) tokens the upstream reported,
    ``cached`` of the input read from its cache, their cost, and no error."""
    rows = ledger_rows(gateway, len(expected), model)
    for row, (tokens_in, tokens_out) in zip(rows, expected, strict=True):
        assert (row["status"], row["error_code"]) == (200, None), row
        assert (row["tokens_in"], row["tokens_out"], row["cache_read_tokens"]) == (tokens_in, tokens_out, cached), row
        assert row["cost"] == pytest.approx(cost(tokens_in, tokens_out, cached), rel=1e-9), row
