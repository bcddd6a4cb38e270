"""Ledgers written before tool calls were kept: a SQLite file of schema 2 gains the kind and size
columns when opened (its rows are model requests), and a Redis row of the older width still reads;
one written before the guardrails column gains it (empty for its rows)."""

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


async def test_a_schema_3_sqlite_ledger_gains_the_guardrails_column(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(SCHEMA_2_LEDGER)
        for column in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "bytes_in", "bytes_out"):
            conn.execute(f"ALTER TABLE ledger ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        conn.execute("ALTER TABLE ledger ADD COLUMN kind TEXT NOT NULL DEFAULT 'model'")
        conn.execute("INSERT INTO ledger (time, request_id, client_id, provider, model, key_label, status, error_code, "
                     "tokens_in, tokens_out, cost_usd, latency_ms, overhead_ms, stream, cache_hit, kind) VALUES "
                     "(1700000000, 'req-v3', 'c1', 'openai', 'gpt-4o', 'openai#1', 200, NULL, 10, 5, 0.01, 100, 0.4, "
                     "0, 0, 'mcp')")
        conn.execute("PRAGMA user_version = 3")
    store = await SqliteStore.open(path)
    try:
        [old] = await store.recent_rows(5)
        assert (old.request_id, old.kind, old.guardrails) == ("req-v3", "mcp", "")
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4


def test_a_redis_row_written_before_the_guardrails_column_reads_without_them() -> None:
    v3 = [1700000000.0, "req-1", "c1", "openai", "gpt-4o", "openai#1", 200, None, 10, 5, 0.01, 100.0, 0.4, 0, 0,
          0, 0, 0, "model", 0, 0]
    assert row_from_values(v3).guardrails == ""
