"""Sessions of the 2025-11-25 revision, served by any worker: the session id is signed, not stored.

An id carries the negotiated revision, the client id, the endpoint's scope (``*`` for ``/mcp``,
else the server id) and when it was opened, with an HMAC over them. Any worker checks it with
the same secret: one derived from the master key when there is one (the same on every replica
sharing the ``.env``), else a random key kept in ``<data dir>/mcp-session.key``. A session ends
``SESSION_TTL_S`` after it opened, or when the client ends it (``DELETE``): that is remembered
as a mark in the runtime store (shared by the workers and replicas on it) until the id expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ...mcp.protocol import INVALID_REQUEST, RpcError
from ...server.runtime import Runtime

SESSION_TTL_S = 24 * 3600.0
KEY_FILE = "mcp-session.key"


@dataclass(frozen=True, slots=True)
class Session:
    version: str
    client_id: str
    scope: str
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._file_secret: bytes | None = None

    def _secret(self) -> bytes:
        master = self.runtime.snapshot.master_digest
        if master is not None:
            return hashlib.sha256(b"mcp-session\0" + master).digest()
        if self._file_secret is None:
            self._file_secret = _file_secret(self.runtime.settings.data_dir / KEY_FILE)
        return self._file_secret

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret(), payload.encode(), hashlib.sha256).hexdigest()[:40]

    def open(self, version: str, client_id: str, scope: str) -> str:
        payload = _b64(orjson.dumps([version, client_id, scope, int(time.time()), secrets.token_hex(8)]))
        return f"{payload}.{self._sign(payload)}"

    async def check(self, session_id: str | None, client_id: str, scope: str) -> Session:
        """The session ``session_id`` names: 400 without one; 404 (open a new one) when it is not
        valid, has ended, or belongs to another client or endpoint."""
        if not session_id:
            raise RpcError(INVALID_REQUEST, "Bad Request: Missing session ID (send initialize first)", status=400)
        gone = RpcError(INVALID_REQUEST, "Session not found", status=404)
        payload, _, signature = session_id.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise gone
        try:
            version, owner, where, opened, nonce = orjson.loads(_unb64(payload))
        except (ValueError, TypeError):
            raise gone from None
        if owner != client_id or where != scope or time.time() - opened > SESSION_TTL_S:
            raise gone
        if (await self.runtime.limiter.store.marks_remaining([_ended(nonce)]))[0] > 0:
            raise gone
        return Session(str(version), str(owner), str(where), str(nonce))

    async def end(self, session: Session) -> None:
        await self.runtime.limiter.store.set_mark(_ended(session.nonce), SESSION_TTL_S)


def _ended(nonce: str) -> str:
    return f"mcp-session-ended:{nonce}"


def _file_secret(path: Path) -> bytes:
    """The key in ``path``, made (mode 600) by the first worker that needs it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another worker is writing it
            data = path.read_bytes()
            if len(data) == 64:
                return bytes.fromhex(data.decode())
            time.sleep(0.01)
        raise RuntimeError(f"{path} does not hold an MCP session key; delete it to make a new one") from None
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text())
