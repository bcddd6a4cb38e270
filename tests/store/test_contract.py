"""The store as a whole: its lifecycle, and what crosses roles (the ledger's writes move the
directory's ``last_used``), run against every backend. ``store`` is a whole fresh store here."""

from __future__ import annotations

import pytest

from gateway.store.base import Store

from .test_directory import client
from .test_ledger import row

pytestmark = pytest.mark.anyio


async def test_a_flush_marks_when_directory_clients_were_last_used(store: Store) -> None:
    await store.create_client(client("c1", "sk-c1-key-00001"))
    assert (await store.get_client("c1")).last_used is None  # type: ignore[union-attr]
    store.record(row(5))
    store.record(row(3))
    store.record(row(9, client_id="config-client"))  # not in the directory: ignored
    await store.flush()
    got = await store.get_client("c1")
    assert got is not None and got.last_used == pytest.approx(1_700_000_005.0)
    assert await store.get_client("config-client") is None


# --- lifecycle -------------------------------------------------------------------------------


async def test_ping_answers(store: Store) -> None:
    await store.ping()
    assert store.name in ("memory", "sqlite", "redis", "postgres")
