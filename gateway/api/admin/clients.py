"""``/clients``: create, list, read, change, delete and rotate the clients of the store's directory.

Clients of config.yaml are listed too (``"source": "config"``) but are read-only here: changing
one, or creating a client with its id, is a 409. An id belongs to config.yaml first: a client of
the directory whose id config.yaml also holds (config.yaml took it later) is shadowed, its key
refused (``auth.authenticate_any``); it is listed with ``"shadowed": true`` and may only be
deleted, so no key stays that neither an API call nor a config edit can end. A new or rotated
key (``sk-`` and 48 URL-safe characters unless one is given) is answered once; only its SHA-256
digest is stored. Every change drops this process's directory cache at once; other workers and
replicas see it when they next poll the directory's version.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from typing import Any

import falcon.asgi

from ...core.targets import key_digest
from ...errors import Conflict, NotFound
from ...pipeline.auth import Caller
from ...store.base import ClientExists, ClientNotFound
from ...store.values import ClientRecord
from .access import audit
from .base import AdminResource, reply, store_errors
from .params import ClientChanges, NewClient, NewKey, read_model
from .views import config_clients, config_view, record_view


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(36)  # 36 random bytes: 48 URL-safe characters


def _read_only(client_id: str, shadowing: bool = False) -> Conflict:
    text = f"Client '{client_id}' is defined in config.yaml; change it there (read-only here)."
    if shadowing:
        text += (" It shadows the client created here with the same id, whose key is refused;"
                 f" DELETE /clients/{client_id} removes that one.")
    return Conflict(text)


class _Clients(AdminResource):
    def _check_key_free(self, key: str) -> bytes:
        digest = key_digest(key)
        snapshot = self.runtime.snapshot
        if digest in snapshot.clients or digest == snapshot.master_digest:
            raise Conflict("This key is already in use; choose another (or leave 'api_key' out).", param="api_key")
        return digest

    async def _writable(self, client_id: str) -> None:
        """409 for an id of config.yaml (naming the shadowed directory client, if there is one)."""
        if client_id in self.runtime.snapshot.client_ids:
            async with store_errors():
                shadowing = await self.runtime.stores.ledger.get_client(client_id) is not None
            raise _read_only(client_id, shadowing)

    async def _record(self, client_id: str) -> ClientRecord:
        async with store_errors():
            record = await self.runtime.stores.ledger.get_client(client_id)
        if record is None:
            raise NotFound(f"No client '{client_id}'.")
        return record

    def _changed(self, caller: Caller, action: str, client_id: str) -> None:
        self.runtime.directory.changed()
        audit(caller, action, client_id)


class ClientListResource(_Clients):
    """``GET /clients/list`` (the client-management document's path) and ``GET /clients``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        async with store_errors():
            records = await self.runtime.stores.ledger.list_clients()
            views = await asyncio.gather(*(config_view(self.runtime, s) for s in config_clients(self.runtime).values()),
                                         *(record_view(self.runtime, r) for r in records))
        reply(resp, {"clients": sorted(views, key=lambda v: (v["client_id"], v["source"]))})


class ClientsResource(ClientListResource):
    """``GET /clients``, ``POST /clients``."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = await self.caller(req)
        body, _ = await read_model(req, NewClient)
        await self._writable(body.client_id)
        key = body.api_key or new_key()
        record = ClientRecord(
            id=body.client_id, key_digest=self._check_key_free(key), description=body.description,
            allowed_providers=tuple(body.allowed_providers), allowed_models=tuple(body.allowed_models),
            limits=body.limits, budget=body.budget, admin=body.admin)
        try:
            async with store_errors():
                record = await self.runtime.stores.ledger.create_client(record)
        except ClientExists:
            raise Conflict(f"A client with id '{body.client_id}' or with this key already exists.",
                           param="client_id") from None
        self._changed(caller, "client.create", record.id)
        reply(resp, {"client": await record_view(self.runtime, record), "api_key": key}, 201)


class ClientResource(_Clients):
    """``GET|PUT|DELETE /clients/{client_id}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, client_id: str) -> None:
        await self.caller(req)
        spec = config_clients(self.runtime).get(client_id)
        view: dict[str, Any]
        if spec is not None:
            view = await config_view(self.runtime, spec)
        else:
            view = await record_view(self.runtime, await self._record(client_id))
        reply(resp, view)

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, client_id: str) -> None:
        caller = await self.caller(req)
        body, given = await read_model(req, ClientChanges)
        await self._writable(client_id)
        old = await self._record(client_id)
        changes: dict[str, Any] = {name: getattr(body, name) for name in given}
        for name in ("allowed_providers", "allowed_models"):
            if name in changes:
                changes[name] = tuple(changes[name])
        try:
            async with store_errors():
                record = await self.runtime.stores.ledger.update_client(replace(old, **changes))
        except ClientNotFound:
            raise NotFound(f"No client '{client_id}'.") from None
        self._changed(caller, "client.update", client_id)
        reply(resp, await record_view(self.runtime, record))

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, client_id: str) -> None:
        caller = await self.caller(req)
        shadowed = client_id in self.runtime.snapshot.client_ids  # then only the directory's client goes
        async with store_errors():
            deleted = await self.runtime.stores.ledger.delete_client(client_id)
        if not deleted:
            raise _read_only(client_id) if shadowed else NotFound(f"No client '{client_id}'.")
        self._changed(caller, "client.delete", client_id)
        reply(resp, {"deleted": client_id, "shadowed": True} if shadowed else {"deleted": client_id})


class RotateResource(_Clients):
    """``POST /clients/{client_id}/rotate``: a new key, shown once; the old one stops at once."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, client_id: str) -> None:
        caller = await self.caller(req)
        body, _ = await read_model(req, NewKey, optional=True)
        await self._writable(client_id)
        key = body.api_key or new_key()
        digest = self._check_key_free(key)
        try:
            async with store_errors():
                record = await self.runtime.stores.ledger.rotate_client(client_id, digest)
        except ClientNotFound:
            raise NotFound(f"No client '{client_id}'.") from None
        except ClientExists:
            raise Conflict("This key is already in use; choose another (or send no body).", param="api_key") from None
        self._changed(caller, "client.rotate", client_id)
        reply(resp, {"client": await record_view(self.runtime, record), "api_key": key})
