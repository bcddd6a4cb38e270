"""The contract of the ``Pins`` role (``set_pin``/``get_pin``/``clear_pin``), run unchanged against
every backend that serves it: what the stateful endpoints' affinity relies on.

``store`` and ``other`` are two handles on one state (see conftest.py); ids are unique per test
because the PostgreSQL database is shared by the whole session.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from gateway.store.base import Pins
from gateway.store.memory import AsyncMemoryStore
from gateway.store.memory.pins import MAX_PINS
from gateway.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio
ROLE = "pins"
_ids = itertools.count()


def object_id(kind: str = "file") -> str:
    return f"{kind}-{os.getpid()}x{next(_ids)}"


async def test_a_pin_is_read_back_and_an_unknown_id_has_none(store: Pins) -> None:
    fid = object_id()
    assert await store.get_pin(fid) is None
    await store.set_pin(fid, '{"p":"openai","k":"openai:ab12"}', 60.0)
    assert await store.get_pin(fid) == '{"p":"openai","k":"openai:ab12"}'
    assert await store.get_pin(object_id()) is None


async def test_a_pin_set_by_one_handle_is_seen_by_the_other(store: Pins, other: Pins) -> None:
    """What two workers or replicas see: the pin one writes, the other reads at once."""
    aid = object_id("asst")
    await store.set_pin(aid, "v1", 60.0)
    assert await other.get_pin(aid) == "v1"
    await other.set_pin(aid, "v2", 60.0)  # a later answer naming it again replaces the value
    assert await store.get_pin(aid) == "v2"


async def test_a_pin_expires_after_its_ttl(store: Pins) -> None:
    short, long = object_id(), object_id()
    await store.set_pin(short, "a", 0.3)
    await store.set_pin(long, "b", 60.0)
    assert await store.get_pin(short) == "a"
    await anyio.sleep(0.45)
    assert await store.get_pin(short) is None
    assert await store.get_pin(long) == "b"
    await store.set_pin(short, "c", 60.0)  # an expired pin can be set again
    assert await store.get_pin(short) == "c"


async def test_clear_forgets_a_pin_for_every_handle(store: Pins, other: Pins) -> None:
    tid = object_id("thread")
    await store.set_pin(tid, "x", 60.0)
    await other.clear_pin(tid)
    assert await store.get_pin(tid) is None
    await store.clear_pin(object_id())  # clearing what was never set is fine


async def test_the_memory_store_keeps_a_bounded_number_of_pins() -> None:
    store = AsyncMemoryStore()
    for i in range(MAX_PINS + 10):
        await store.set_pin(f"file-{i}", "x", 60.0)
    assert await store.get_pin("file-0") is None  # the oldest went first
    assert await store.get_pin(f"file-{MAX_PINS + 9}") == "x"
    await store.close()


async def test_a_sqlite_file_of_the_previous_schema_gets_the_pins_table(tmp_path: Path) -> None:
    """A file written before pins existed (schema 1) is migrated when opened; its data stays."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE marks (name TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID")
        conn.execute("INSERT INTO marks VALUES ('cooldown:k', ?)", (time.time() + 60,))
        conn.execute("PRAGMA user_version = 1")
    store = await SqliteStore.open(path)
    try:
        await store.set_pin("file-old", "v", 60.0)
        assert await store.get_pin("file-old") == "v"
        assert (await store.marks_remaining(["cooldown:k"]))[0] > 50
    finally:
        await store.close()
