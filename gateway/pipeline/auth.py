"""Who is calling: client keys (stored as SHA-256 digests) and the master key.

The presented key is hashed once; the digest picks the client from the snapshot and is then
compared in constant time. The key itself is never kept, logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace

from ..config.snapshot import Snapshot
from ..core.mcp import ALL_MCP
from ..core.policy import Budget, Limits
from ..core.targets import ClientSpec, key_digest
from ..errors import AdminRequired, AuthenticationError
from ..store.directory import ClientDirectory

MASTER = ClientSpec(id="master", digest=b"", allowed_providers=None, allowed_models=None,
                    limits=Limits(), budget=Budget(), admin=True, mcp=ALL_MCP)


@dataclass(frozen=True, slots=True)
class Caller:
    client: ClientSpec
    is_master: bool


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key:
        return x_api_key.strip() or None
    return None


def authenticate(snapshot: Snapshot, authorization: str | None, x_api_key: str | None) -> Caller:
    key = presented_key(authorization, x_api_key)
    if key is None:
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'.")
    digest = key_digest(key)
    client = snapshot.clients.get(digest)
    if client is not None and hmac.compare_digest(client.digest, digest):
        return Caller(client, False)
    if snapshot.master_digest is not None and hmac.compare_digest(snapshot.master_digest, digest):
        return Caller(MASTER, True)
    raise AuthenticationError("Invalid API key.")


async def authenticate_any(snapshot: Snapshot, directory: ClientDirectory | None, authorization: str | None,
                           x_api_key: str | None) -> Caller:
    """``authenticate``, then the store's client directory (clients created at runtime) for a key
    the snapshot does not know. A directory client whose id config.yaml also holds is shadowed
    by the config's client: its key is refused. Raises ``AuthenticationError`` (401), or
    ``StoreUnavailable`` (503) when only the unreachable directory could tell."""
    try:
        return authenticate(snapshot, authorization, x_api_key)
    except AuthenticationError:
        key = presented_key(authorization, x_api_key)
        if key is None or directory is None:
            raise
        digest = key_digest(key)
        client = await directory.find(digest)
        if client is None or client.id in snapshot.client_ids or not hmac.compare_digest(client.digest, digest):
            raise
        return Caller(client, False)


def require_admin(snapshot: Snapshot, authorization: str | None, x_api_key: str | None) -> Caller:
    """The caller if it holds the master key or an ``admin: true`` client key of the config.

    Raises ``AuthenticationError`` (401) without a valid key and ``AdminRequired`` (403) for any
    other client. (The admin API also takes directory clients and dashboard sessions:
    ``api/admin/access.py``.)
    """
    caller = authenticate(snapshot, authorization, x_api_key)
    if not caller.client.admin:
        raise AdminRequired("This endpoint needs the master key or the key of a client with 'admin: true'.")
    return caller


def session_caller(snapshot: Snapshot, who: str, directory_client: ClientSpec | None = None) -> Caller:
    """The caller a checked dashboard session stands for (``master``, ``client:<id>``, ``user:<name>``)."""
    if who == "master":
        return Caller(MASTER, True)
    if who.startswith("client:"):
        client_id = who.removeprefix("client:")
        client = next((c for c in snapshot.clients.values() if c.id == client_id), directory_client)
        if client is not None:
            return Caller(client, False)
    return Caller(replace(MASTER, id=who), False)


def is_admin(snapshot: Snapshot, authorization: str | None, x_api_key: str | None) -> bool:
    """True for the master key or an admin client key; False for none, a wrong or a plain client key."""
    if presented_key(authorization, x_api_key) is None:
        return False
    try:
        require_admin(snapshot, authorization, x_api_key)
    except (AuthenticationError, AdminRequired):
        return False
    return True
