"""The gateway's state: ``/status``, ``/providers`` with each key's state, and provider keys added
or removed at runtime (``gateway/control/provider_keys.py`` writes the files; the new snapshot is
swapped in here at once, so the change is live when the answer comes)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.asgi

from ...control import provider_keys as pk
from ...control.checked_edit import ChangedWhileEditing
from ...control.configfile import EditError
from ...core.targets import ProviderSpec
from ...errors import Conflict, GatewayError, InvalidRequest, NotFound
from ...observability import metrics
from ...server.oplock import LockTimeout
from ...server.runtime import Runtime
from .access import audit, who
from .base import AdminResource, reply, store_errors
from .params import NewKey, read_model
from .views import config_clients

log = logging.getLogger("gateway.admin")
HOUR_S = 3600.0


class StatusResource(AdminResource):
    """``GET /status``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        runtime = self.runtime
        snapshot, reload = runtime.snapshot, runtime.reload
        async with store_errors():
            directory = await runtime.stores.ledger.list_clients()
        counts = metrics.counter_samples(metrics.CACHE_LOOKUPS_FAMILY, metrics.GUARDRAIL_ACTIONS_FAMILY)
        reply(resp, {
            "config_version": snapshot.version,
            "last_reload": {"result": reload.result, "at": int(reload.at), "error": reload.error,
                            "restart_needed": reload.restart_needed},
            "started_at": int(runtime.started_at), "uptime_s": round(time.time() - runtime.started_at, 1),
            "providers": len(snapshot.providers), "clients": len(config_clients(runtime)) + len(directory),
            "store": {"runtime": runtime.stores.runtime.name, "ledger": runtime.stores.ledger.name},
            "warnings": list(snapshot.warnings),
            "cache": _cache_view(counts),
            "sinks": runtime.sinks.status(),
            "guardrails": _guardrails_view(runtime, counts),
        })


def _cache_view(counts: metrics.Samples) -> dict[str, Any]:
    """The response cache's lookups since this gateway started (all its workers; each replica its own)."""
    lookups = metrics.cache_lookups(counts)
    total = lookups["hit"] + lookups["miss"]
    return {"hits": lookups["hit"], "misses": lookups["miss"],
            "hit_rate": round(lookups["hit"] / total, 6) if total else None}


def _guardrails_view(runtime: Runtime, counts: metrics.Samples) -> dict[str, Any]:
    """The configured guards and their actions since this gateway started (all its workers)."""
    guardrails = runtime.snapshot.guardrails
    guards = [{"name": g.name, "input": g.on_input, "output": g.on_output} for g in guardrails.guards.values()]
    return {"guards": guards,
            "default": list(guardrails.default),
            "actions": [{"guardrail": g, "action": a, "count": n} for g, a, n in metrics.guardrail_actions(counts)]}


async def _key_views(runtime: Runtime, provider: ProviderSpec, served: dict[str, int]) -> list[dict[str, Any]]:
    board = runtime.key_pool
    states = [board.state(key, provider) for key in provider.keys]
    left = await board.store.marks_remaining([m for s in states for m in s.marks])
    now = time.time()
    views = []
    for i, state in enumerate(states):
        cool, dead, circuit = left[3 * i:3 * i + 3]
        name, rest = next(((n, r) for n, r in (("quarantined", dead), ("circuit_open", circuit),
                                                  ("cooling", cool)) if r > 0), ("ok", 0.0))
        views.append({"label": provider.keys[i].label, "state": name, "until": int(now + rest) if rest else None,
                      "in_flight": state.in_flight, "requests_1h": served.get(state.label, 0),
                      "rate_limited_1h": await board.rate_limited_1h(state)})
    return views


class ProvidersResource(AdminResource):
    """``GET /providers``: each provider and its keys (labels such as ``openai#2``, never a key).
    ``requests_1h`` counts the requests a key answered (the ledger, every process);
    ``rate_limited_1h`` the 429s it got, failed-over attempts included."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        runtime = self.runtime
        now = time.time()
        async with store_errors():
            served = {g.key: g.requests for g in await runtime.stores.ledger.usage_stats("key", now - HOUR_S, now)}
            providers = [{"id": p.id, "type": p.type, "models": sorted(p.models), "api_root": p.api_root,
                          "keys": await _key_views(runtime, p, served)} for p in runtime.snapshot.providers.values()]
        reply(resp, {"providers": providers})


def _files(runtime: Runtime) -> pk.Files:
    return pk.Files(Path(os.path.abspath(runtime.settings.config)), Path(os.path.abspath(runtime.settings.env_file)))


def _label(provider_id: str, raw: str) -> str:
    """``fake#2``, or just ``2`` (a ``#`` in a URL must be sent as ``%23``)."""
    return f"{provider_id}#{raw}" if raw.isdigit() else raw


def _refused(exc: Exception) -> GatewayError:
    if isinstance(exc, (pk.ProviderNotFound, pk.KeyNotFound)):
        return NotFound(f"{str(exc).capitalize()}.")
    if isinstance(exc, pk.KeyConflict):
        return Conflict(f"{str(exc).capitalize()}.")
    if isinstance(exc, LockTimeout):
        return Conflict(f"Another operator action holds the lock ({exc.holder or 'unknown'}); retry shortly.")
    if isinstance(exc, ChangedWhileEditing):
        return Conflict(f"{exc}.")
    return InvalidRequest(f"Refused: the config with this change would not load (nothing was written):\n{exc}")


class KeysEditor(AdminResource):
    def apply(self, change: pk.KeyChange) -> None:
        """Make the files just written live in this process now (the snapshot built from them under
        the lock); the config watchers of other workers load them within about a second, and this
        process's watcher then finds nothing new."""
        runtime = self.runtime
        if runtime.snapshot.version == change.snapshot.version:
            return
        previous = runtime.snapshot.version
        runtime.swap(change.snapshot)
        runtime.reload.result, runtime.reload.error, runtime.reload.at = "ok", None, time.time()
        metrics.CONFIG_RELOADS.labels("ok").inc()
        log.info("config reloaded (admin API)", extra={"config_version": change.snapshot.version,
                                                        "previous": previous})

    async def edit(self, fn: Callable[[], pk.KeyChange]) -> pk.KeyChange:
        try:
            return await asyncio.to_thread(fn)
        except (pk.KeyEditError, EditError, LockTimeout, ChangedWhileEditing) as exc:
            raise _refused(exc) from None


class ProviderKeysResource(KeysEditor):
    """``POST /providers/{provider_id}/keys`` ``{"api_key": "..."}`` → 201 ``{"label"}``."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, provider_id: str) -> None:
        caller = await self.caller(req)
        body, _ = await read_model(req, NewKey)
        secret = body.api_key
        problem = "is required" if secret is None else pk.check_secret(secret)
        if secret is None or problem is not None:
            raise InvalidRequest(f"Invalid 'api_key': {problem}.", param="api_key")
        snapshot, files = self.runtime.snapshot, _files(self.runtime)
        change = await self.edit(lambda: pk.add_key(files, snapshot, provider_id, secret, who(caller)))
        self.apply(change)
        audit(caller, "provider_key.add", change.label, provider=provider_id, variables=list(change.variables))
        reply(resp, {"provider_id": provider_id, "label": change.label, "env_variables": list(change.variables),
                     "config_changed": change.config_changed, "config_version": self.runtime.snapshot.version}, 201)


class ProviderKeyResource(KeysEditor):
    """``DELETE /providers/{provider_id}/keys/{label}`` (``fake#2``, sent as ``fake%232``, or ``2``)."""

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, provider_id: str,
                        label: str) -> None:
        caller = await self.caller(req)
        wanted = _label(provider_id, label)
        snapshot, files = self.runtime.snapshot, _files(self.runtime)
        change = await self.edit(lambda: pk.remove_key(files, snapshot, provider_id, wanted, who(caller)))
        self.apply(change)
        audit(caller, "provider_key.remove", wanted, provider=provider_id, variables=list(change.variables))
        reply(resp, {"provider_id": provider_id, "deleted": wanted, "env_variables": list(change.variables),
                     "config_changed": change.config_changed, "config_version": self.runtime.snapshot.version})

