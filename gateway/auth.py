"""Who is calling: client keys (stored as SHA-256 digests) and the master key.

The presented key is hashed once; the digest picks the client from the snapshot and is then
compared in constant time. The key itself is never kept, logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .config.schema import Budget, Limits
from .config.snapshot import ClientSpec, Snapshot, key_digest
from .errors import AuthenticationError

MASTER = ClientSpec(id="master", digest=b"", allowed_providers=None, allowed_models=None,
                    limits=Limits(), budget=Budget(), admin=True)


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
