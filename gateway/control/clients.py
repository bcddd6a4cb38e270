"""Adding a client to the config file: a new ``sk-`` key, only its hash written, comments kept.

The new entry is inserted at the top of the ``api_keys:`` list through ruamel's round trip
(``configfile.py``: comments and layout kept; a new list is made when there is none), the result
is validated as a whole, then written atomically (temp file + rename)
so the running gateway's watcher picks it up as one change. The read-modify-write goes through
``checked_edit.py``: under the operator lock (``gateway/server/oplock.py``, the
``run/gateway.lock`` that the scripts take), so concurrent writers never drop each other's
clients, and written only over the file it read, so an edit made by hand meanwhile is never
reverted (the client is added on top of it instead).

An id belongs to config.yaml first: a client added here shadows a client of the store's directory
(created through the admin API) with the same id, whose key the gateway then refuses. So the ids
of the directory are read too, when the store can be reached: a chosen id is skipped, a given one
refused. A store that cannot be read is a warning on stderr, not a failure.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from ..config.loader import ConfigError, parse_config, read_environment
from ..config.snapshot import build_snapshot
from ..core.targets import key_hash_text
from ..server.oplock import DEFAULT_TIMEOUT_S, LockTimeout
from ..settings import Settings
from ..store.base import StoreError
from ..store.config import Storage
from ..store.factory import backend_class, open_backend, sqlite_path
from .checked_edit import ChangedWhileEditing, EditedFile, edit_files
from .configfile import EditError, prepend_client


def new_client_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def client_entry(client_id: str, key_hash: str, providers: list[str], rpm: int | None, tpm: int | None,
                 admin: bool) -> dict[str, Any]:
    """The new client as config.yaml holds it (only the key's hash)."""
    entry: dict[str, Any] = {"id": client_id, "key_hash": key_hash, "allowed_providers": providers}
    limits = {k: v for k, v in (("req_per_min", rpm), ("tokens_per_min", tpm)) if v is not None}
    if limits:
        entry["limits"] = limits
    if admin:
        entry["admin"] = True
    return entry


def check_limits(rpm: int | None, tpm: int | None) -> None:
    """A limit is a whole number >= 1, as the config schema requires; 0 never means "no limit"."""
    for flag, value in (("--rpm", rpm), ("--tpm", tpm)):
        if value is not None and value < 1:
            raise SystemExit(f"error: {flag} must be at least 1, not {value} (to set no limit, leave {flag} out)")


class _Refused(Exception):
    """The request cannot be met (the message says why); nothing was written."""


def add_client(settings: Settings, *, client_id: str | None, providers: str, rpm: int | None,
               tpm: int | None, admin: bool = False) -> str:
    """Add a client (under the operator lock) and return its new key; SystemExit on a bad request."""
    check_limits(rpm, tpm)
    path = Path(settings.config)

    def change(texts: list[str]) -> tuple[list[str], str]:
        new_text, key = _with_client(texts[0], settings, client_id=client_id, providers=providers, rpm=rpm,
                                     tpm=tpm, admin=admin)
        return [new_text], key

    try:
        return edit_files([EditedFile(path)], change, "python -m gateway add-client", DEFAULT_TIMEOUT_S)
    except _Refused as exc:
        raise SystemExit(f"error: {exc}") from None
    except LockTimeout as exc:
        raise SystemExit(f"error: another writer holds the config: {exc}") from None
    except ChangedWhileEditing as exc:
        raise SystemExit(f"error: {path}: {exc}") from None


def _with_client(text: str, settings: Settings, *, client_id: str | None, providers: str, rpm: int | None,
                 tpm: int | None, admin: bool) -> tuple[str, str]:
    """``text`` with a new client in it, and the client's key."""
    path = Path(settings.config)
    environ = read_environment(Path(settings.env_file))
    try:
        loaded = parse_config(text.encode(), str(path), environ)
        existing = build_snapshot(loaded, str(path))
    except ConfigError as exc:
        raise _Refused(f"the config does not load; fix it first:\n{exc.render()}") from None
    taken = set(existing.client_ids)
    in_directory = directory_ids(settings, loaded.config.storage) or set()
    if client_id is None:
        taken |= in_directory
        n = len(taken) + 1
        while f"client-{n:03d}" in taken:
            n += 1
        client_id = f"client-{n:03d}"
    elif client_id in taken:
        raise _Refused(f"a client with id '{client_id}' already exists in {path}")
    elif client_id in in_directory:
        raise _Refused(f"a client with id '{client_id}' was created through the admin API; delete it there first "
                       f"(DELETE /admin/v1/clients/{client_id}) or choose another --id (in config.yaml, the id "
                       "would shadow that client and its key would stop working)")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", client_id):
        raise _Refused("--id may hold letters, digits, '.', '_' and '-' only")
    allowed = [p.strip() for p in providers.split(",") if p.strip()] or ["*"]
    unknown = [p for p in allowed if p != "*" and p not in existing.providers]
    if unknown:
        raise _Refused(f"unknown provider(s) {', '.join(unknown)}; configured: "
                       f"{', '.join(existing.providers) or 'none'}")
    key = new_client_key()
    try:
        new_text = prepend_client(text, client_entry(client_id, key_hash_text(key), allowed, rpm, tpm, admin))
    except EditError as exc:
        raise _Refused(str(exc)) from None
    try:
        build_snapshot(parse_config(new_text.encode(), str(path), environ), str(path))
    except ConfigError as exc:
        raise _Refused(f"the config would not be valid after adding the client:\n{exc.render()}") from None
    return new_text, key


def directory_ids(settings: Settings, storage: Storage) -> set[str] | None:
    """The ids of the clients in the store's directory; None (and a warning) if it cannot be read."""
    spec = storage.ledger_backend()
    data_dir = Path(settings.data_dir)
    unshared = not backend_class(spec.type).shared  # nothing kept outside the gateway's process
    unmade = spec.type == "sqlite" and not sqlite_path(spec, data_dir=data_dir).exists()  # no gateway made it yet
    if unshared or unmade:
        return set()

    async def read() -> set[str]:
        store = await open_backend(spec, data_dir=data_dir)
        try:
            return {record.id for record in await store.list_clients()}
        finally:
            await store.close()

    try:
        return asyncio.run(read())
    except StoreError as exc:
        print(f"warning: cannot read the client directory to check the id ({exc}); a client created through "
              "the admin API with the same id would be shadowed by this one (its key refused)", file=sys.stderr)
        return None

