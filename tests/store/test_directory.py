"""The contract of the ``Directory`` role (clients created at runtime), run unchanged against every
backend that serves it (``store`` and ``other``: see test_counters.py and conftest.py)."""

from __future__ import annotations

import hashlib
import time

import pytest

from gateway.core.policy import Budget, Limits
from gateway.store.base import ClientExists, ClientNotFound, Directory
from gateway.store.values import ClientRecord

pytestmark = pytest.mark.anyio
ROLE = "directory"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def client(cid: str, key: str, **kw: object) -> ClientRecord:
    return ClientRecord(id=cid, key_digest=digest(key), **kw)  # type: ignore[arg-type]


async def test_create_get_and_list_clients(store: Directory) -> None:
    made = await store.create_client(client(
        "prod-app-001", "sk-prod-app-key-123", description="Production mobile application",
        allowed_providers=("openai", "anthropic"), allowed_models=("gpt-4o",),
        limits=Limits(req_per_min=100, tokens_per_min=50000), budget=Budget(daily_usd=5), admin=False))
    assert made.created_at > time.time() - 60
    await store.create_client(client("a-first", "sk-another-key-456", admin=True, allowed_providers=()))
    got = await store.get_client("prod-app-001")
    assert got == made
    assert got is not None and got.limits.req_per_min == 100 and got.budget.daily_usd == 5
    assert await store.client_by_digest(digest("sk-prod-app-key-123")) == made
    assert await store.client_by_digest(digest("sk-unknown-key")) is None
    assert await store.get_client("nobody") is None
    listed = await store.list_clients()
    assert [c.id for c in listed] == ["a-first", "prod-app-001"]
    assert listed[0].admin and listed[0].allowed_providers == ()


async def test_create_refuses_a_taken_id_or_key(store: Directory) -> None:
    await store.create_client(client("one", "sk-key-one-1"))
    with pytest.raises(ClientExists):
        await store.create_client(client("one", "sk-key-two-2"))
    with pytest.raises(ClientExists):
        await store.create_client(client("two", "sk-key-one-1"))
    assert [c.id for c in await store.list_clients()] == ["one"]


async def test_update_replaces_settings_but_keeps_key_and_dates(store: Directory) -> None:
    made = await store.create_client(client("app", "sk-app-key-0001"))
    changed = await store.update_client(ClientRecord(
        id="app", key_digest=b"ignored", description="Updated production mobile app",
        allowed_providers=("openai", "anthropic", "gemini"), created_at=1.0))
    assert changed.key_digest == made.key_digest and changed.created_at == made.created_at
    assert await store.get_client("app") == changed
    assert changed.allowed_providers == ("openai", "anthropic", "gemini")
    with pytest.raises(ClientNotFound):
        await store.update_client(client("ghost", "sk-ghost-key-1"))


async def test_rotate_retires_the_old_key_at_once(store: Directory, other: Directory) -> None:
    await store.create_client(client("app", "sk-old-key-0001"))
    await store.create_client(client("else", "sk-else-key-001"))
    rotated = await store.rotate_client("app", digest("sk-new-key-0002"))
    assert rotated.key_digest == digest("sk-new-key-0002")
    assert await other.client_by_digest(digest("sk-old-key-0001")) is None
    found = await other.client_by_digest(digest("sk-new-key-0002"))
    assert found is not None and found.id == "app"
    with pytest.raises(ClientExists):
        await store.rotate_client("app", digest("sk-else-key-001"))
    with pytest.raises(ClientNotFound):
        await store.rotate_client("ghost", digest("sk-x-key-00001"))


async def test_delete_frees_the_id_and_key(store: Directory) -> None:
    await store.create_client(client("app", "sk-app-key-0001"))
    assert await store.delete_client("app") is True
    assert await store.delete_client("app") is False
    assert await store.client_by_digest(digest("sk-app-key-0001")) is None
    assert await store.list_clients() == []
    await store.create_client(client("app", "sk-app-key-0001"))  # both free again


async def test_the_directory_version_moves_on_every_change(store: Directory, other: Directory) -> None:
    seen = [await other.directory_version()]
    await store.create_client(client("app", "sk-app-key-0001"))
    seen.append(await other.directory_version())
    await store.update_client(client("app", "sk-app-key-0001", description="x"))
    seen.append(await other.directory_version())
    await store.rotate_client("app", digest("sk-app-key-0002"))
    seen.append(await other.directory_version())
    await store.delete_client("app")
    seen.append(await other.directory_version())
    assert len(set(seen)) == 5
    await store.delete_client("app")  # no change, no new version
    assert await other.directory_version() == seen[-1]
