"""Ledgers written before tool calls were kept: a SQLite file of schema 2 gains the kind and size
columns when opened (its rows are model requests), and a Redis row of the older width still reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store.rows import row_from_values
from gateway.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

SCHEMA_2_LEDGER = """CREATE TABLE ledger (time REAL NOT NULL, request_id TEXT NOT NULL, client_id TEXT NOT NULL,
    provider TEXT NOT NULL, model TEXT NOT NULL, key_label TEXT NOT NULL, status INTEGER NOT NULL,
    error_code TEXT, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, cost_usd REAL NOT NULL,
    latency_ms REAL NOT NULL, overhead_ms REAL NOT NULL, stream INTEGER NOT NULL, cache_hit INTEGER NOT NULL)"""


async def test_a_schema_2_sqlite_ledger_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(SCHEMA_2_LEDGER)
        conn.execute("INSERT INTO ledger VALUES (1700000000, 'req-old', 'c1', 'openai', 'gpt-4o', 'openai#1', 200, "
                     "NULL, 10, 5, 0.01, 100, 0.4, 0, 0)")
        conn.execute("PRAGMA user_version = 2")
    store = await SqliteStore.open(path)
    try:
        [old] = await store.recent_rows(5)
        assert (old.request_id, old.kind, old.bytes_in, old.bytes_out) == ("req-old", "model", 0, 0)
        assert [g.key for g in await store.usage_stats("client", 0, 2e9, kind="model")] == ["c1"]
        assert await store.usage_stats("client", 0, 2e9, kind="mcp") == []
    finally:
        await store.close()


def test_a_redis_row_of_the_older_width_reads_as_a_model_request() -> None:
    old = [1700000000.0, "req-1", "c1", "openai", "gpt-4o", "openai#1", 200, None, 10, 5, 0.01, 100.0, 0.4, 0, 0]
    row = row_from_values(old)
    assert (row.kind, row.bytes_in, row.bytes_out, row.tokens_in) == ("model", 0, 0, 10)
