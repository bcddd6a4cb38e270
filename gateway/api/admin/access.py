"""Who may call the admin API, and the audit log of what they did.

The master key, a client key with ``admin: true`` (from config.yaml or the client directory), or
a signed-in dashboard session; any other client key is 403 ``admin_required``, no key 401.
Every change is one line on the ``gateway.audit`` logger: who (``master``, ``client:<id>``,
``user:<name>``), the action, and the id it touched; never a key.
"""

from __future__ import annotations

import logging

import falcon.asgi

from ...core.targets import ClientSpec
from ...errors import AdminRequired, AuthenticationError
from ...pipeline.auth import Caller, authenticate_any, presented_key, require_admin, session_caller
from ...server.runtime import Runtime
from ...store.base import StoreDown
from ...store.directory import client_spec
from ..ui.session import require_session

audit_log = logging.getLogger("gateway.audit")
NOT_ADMIN = "This endpoint needs the master key or the key of a client with 'admin: true'."


async def admin_caller(runtime: Runtime, req: falcon.asgi.Request) -> Caller:
    """The admin calling, or AuthenticationError (401) / AdminRequired (403)."""
    snapshot = runtime.snapshot
    authorization, x_api_key = req.get_header("authorization"), req.get_header("x-api-key")
    if presented_key(authorization, x_api_key) is None:
        signed_in = await require_session(req, snapshot)  # a dashboard session (a mutating call: with its CSRF token)
        if signed_in is not None:
            return session_caller(snapshot, signed_in, await _directory_client(runtime, signed_in))
    try:
        return require_admin(snapshot, authorization, x_api_key)
    except AuthenticationError:
        if presented_key(authorization, x_api_key) is None:
            raise
    caller = await authenticate_any(snapshot, runtime.directory, authorization, x_api_key)
    if not caller.client.admin:
        raise AdminRequired(NOT_ADMIN)
    return caller


async def _directory_client(runtime: Runtime, signed_in: str) -> ClientSpec | None:
    """The directory's admin client a ``client:<id>`` session stands for, if it is not in the config."""
    client_id = signed_in.removeprefix("client:")
    if not signed_in.startswith("client:") or client_id in runtime.snapshot.client_ids:
        return None
    try:
        record = await runtime.directory.store.get_client(client_id)
    except StoreDown:
        return None
    return client_spec(record) if record is not None and record.admin else None


def who(caller: Caller) -> str:
    """``master``, ``client:<id>`` or (a dashboard user) ``user:<name>``."""
    if caller.is_master:
        return "master"
    if not caller.client.digest and caller.client.id.startswith("user:"):
        return caller.client.id
    return "client:" + caller.client.id


def audit(caller: Caller, action: str, target: str, **details: object) -> None:
    """One line per admin change. ``details`` must never hold a key."""
    audit_log.info("admin action", extra={"who": who(caller), "action": action, "target": target, **details})
