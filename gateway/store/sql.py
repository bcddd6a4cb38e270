"""SQL shared by the SQLite and PostgreSQL stores (written with ``?`` placeholders; the
PostgreSQL store turns them into ``%s``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .common import client_from_dict, client_to_dict
from .rows import LEDGER_COLUMNS
from .values import GROUP_COLUMNS, ClientRecord, GroupBy, UsageGroup, UsageTotals

SCHEMA_VERSION = 3  # 2: the pins table (object affinity); 3: the ledger's token details and tool-call columns
# The ledger columns schema version 3 adds, with their SQL types (an existing ledger gets them, defaulted).
LEDGER_V3 = (("cache_read_tokens", "INTEGER NOT NULL DEFAULT 0"), ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0"),
             ("reasoning_tokens", "INTEGER NOT NULL DEFAULT 0"), ("kind", "TEXT NOT NULL DEFAULT 'model'"),
             ("bytes_in", "INTEGER NOT NULL DEFAULT 0"), ("bytes_out", "INTEGER NOT NULL DEFAULT 0"))

INSERT_LEDGER = (f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in LEDGER_COLUMNS)})")
TOUCH_CLIENT = "UPDATE clients SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)"
PRUNE_LEDGER = "DELETE FROM ledger WHERE time < ?"

# a response-cache hit's cost_usd is what it saved, not what it spent
SPENT = "CASE WHEN cache_hit THEN 0 ELSE cost_usd END"
TOTALS = ("SELECT count(*), coalesce(sum(CASE WHEN status < 400 THEN 1 ELSE 0 END), 0), "
          f"coalesce(sum(tokens_in + tokens_out), 0), coalesce(sum({SPENT}), 0), coalesce(avg(latency_ms), 0), "
          "max(time) FROM ledger WHERE client_id = ? AND time >= ? AND time <= ?")


def client_json(record: ClientRecord) -> str:
    """The ``data`` column of the clients table: everything but ``last_used`` (a column of its own)."""
    data = client_to_dict(record)
    data.pop("last_used")
    return json.dumps(data)


def client_record(data: str, last_used: float | None) -> ClientRecord:
    return replace(client_from_dict(json.loads(data)), last_used=last_used)


def stats_query(group_by: GroupBy, client_id: str | None) -> str:
    column = GROUP_COLUMNS[group_by]  # from a fixed table: never caller text
    where = "time >= ? AND time <= ?" + (" AND client_id = ?" if client_id is not None else "")
    return (f"SELECT {column}, count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
            f"coalesce(sum({SPENT}), 0), coalesce(sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0), "
            "coalesce(avg(latency_ms), 0), coalesce(sum(CASE WHEN cache_hit THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN cache_hit THEN cost_usd ELSE 0 END), 0) "
            f"FROM ledger WHERE {where} GROUP BY {column} ORDER BY {column}")


def stats_params(start: float, end: float, client_id: str | None) -> tuple[Any, ...]:
    return (start, end) if client_id is None else (start, end, client_id)


def totals_from(client_id: str, row: Sequence[Any]) -> UsageTotals:
    count, ok, tokens, cost, latency, last = row
    count = int(count)
    return UsageTotals(client_id, count, int(tokens), float(cost), int(ok) / count if count else 0.0,
                       float(latency), None if last is None else float(last))


def groups_from(rows: Sequence[Sequence[Any]]) -> list[UsageGroup]:
    return [UsageGroup(str(k), int(n), int(tin), int(tout), float(cost), int(err), float(lat), int(hits), float(saved))
            for k, n, tin, tout, cost, err, lat, hits, saved in rows]


# --- the admin API's time series, latest rows and live feed -----------------------------------------

_COLUMNS = ", ".join(LEDGER_COLUMNS)


def rows_query(client_id: str | None) -> str:
    """Every column of the rows in a period (of one client): what the time series is computed from."""
    where = "time >= ? AND time <= ?" + (" AND client_id = ?" if client_id is not None else "")
    return f"SELECT {_COLUMNS} FROM ledger WHERE {where}"


def recent_query(client_id: str | None) -> str:
    where = " WHERE client_id = ?" if client_id is not None else ""
    return f"SELECT {_COLUMNS} FROM ledger{where} ORDER BY time DESC LIMIT ?"


def recent_params(limit: int, client_id: str | None) -> tuple[Any, ...]:
    return (limit,) if client_id is None else (client_id, limit)


def feed_query(seq_column: str) -> str:
    """Rows written after a sequence number (SQLite's rowid, PostgreSQL's id), in write order."""
    return f"SELECT {seq_column}, {_COLUMNS} FROM ledger WHERE {seq_column} > ? ORDER BY {seq_column} LIMIT ?"


def feed_end_query(seq_column: str) -> str:
    return f"SELECT coalesce(max({seq_column}), 0) FROM ledger"
