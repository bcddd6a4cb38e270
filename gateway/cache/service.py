"""What the pipeline asks of the cache: whether a request is cached (``plan``), a stored answer
for it (``lookup``), and keeping a fresh answer (``keep``). Lookups are counted as metrics.

Which cache: a client with ``cache:`` has its own (namespace ``client:<id>``: its answers are
reused for it alone); otherwise an alias with ``cache:`` has one shared by every client that
uses it (``alias:<name>``), the key naming the targets each client may be served by. A request
neither opted into is not cached (and gets no ``x-cache`` header).

Forms: a whole answer is kept as JSON, a stream as its events. A stream request is served from
the events of an earlier stream (with usage chunk or without, as it asks), else from a whole
answer turned into events; a whole request only from a whole answer (a stream's events are not
assembled back into one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config.snapshot import Snapshot
from ..core.call import CHAT, COMPLETIONS, Call
from ..core.policy import CacheConfig
from ..core.targets import ClientSpec, Route
from ..core.usage import Usage
from ..observability import metrics
from .base import CacheBackend
from .entry import JSON, SSE, Entry, entry_limit
from .key import form_key, request_digest

CACHED_OPERATIONS = frozenset({CHAT, COMPLETIONS})


def cache_directives(header: str | None) -> tuple[bool, bool]:
    """``(no_cache, no_store)`` from a request's ``Cache-Control``: ``no-cache`` answers from the
    upstream (and keeps that answer), ``no-store`` does not keep the answer."""
    if not header:
        return False, False
    words = {part.strip().lower() for part in header.split(",")}
    return "no-cache" in words, "no-store" in words


@dataclass(frozen=True, slots=True)
class CachePlan:
    """How one request uses the cache."""

    namespace: str
    digest: str
    config: CacheConfig
    stream: bool
    with_usage: bool
    lookup: bool  # False: ``Cache-Control: no-cache``
    keep: bool  # False: ``Cache-Control: no-store``

    @property
    def max_bytes(self) -> int:
        return int(self.config.max_mb * 1024 * 1024)

    @property
    def entry_limit(self) -> int:
        """The largest answer (payload bytes) this cache keeps (``entry.entry_limit``)."""
        return entry_limit(self.max_bytes)


def _policy(alias_cache: Mapping[str, CacheConfig], client: ClientSpec, model: str) -> tuple[str, CacheConfig] | None:
    if client.cache is not None:
        return "client:" + client.id, client.cache
    config = alias_cache.get(model)
    return ("alias:" + model, config) if config is not None else None


class ResponseCache:
    def __init__(self, backend: CacheBackend):
        self.backend = backend

    def plan(self, snapshot: Snapshot, client: ClientSpec, call: Call, route: Route,
             cache_control: str | None) -> CachePlan | None:
        """The request's plan, or None when it is not cached (not opted in, or not a request the
        cache serves: OpenAI chat and completions bodies, in the OpenAI dialect)."""
        if call.operation not in CACHED_OPERATIONS or call.dialect != "openai" or call.native_body is not None \
                or call.upload is not None:
            return None
        policy = _policy(snapshot.alias_cache, client, call.model)
        if policy is None:
            return None
        try:
            # a translated call's stream keeps the upstream's model in its events: kept apart from a plain call's
            operation = call.operation + "+translated" if call.translated else call.operation
            digest = request_digest(operation, call.model, (t.name for t in route.targets), call.body)
        except TypeError:
            return None
        no_cache, no_store = cache_directives(cache_control)
        return CachePlan(policy[0], digest, policy[1], call.stream, call.wants_usage, not no_cache, not no_store)

    async def lookup(self, plan: CachePlan) -> Entry | None:
        """A stored answer in a form the request can be served (see the module docstring); counted."""
        found = None
        if plan.stream:
            found = await self.backend.get(plan.namespace, form_key(plan.digest, SSE, plan.with_usage))
        if found is None:
            found = await self.backend.get(plan.namespace, form_key(plan.digest, JSON))
        metrics.cache_lookups_by("hit" if found is not None else "miss").inc()
        return found

    async def keep(self, plan: CachePlan, form: str, payload: bytes, provider: str, model: str, usage: Usage,
                   cost_usd: float) -> None:
        """Keep a complete 200 answer (``form`` JSON or SSE) for the plan's time to live, unless it
        is larger than ``plan.entry_limit``."""
        if len(payload) > plan.entry_limit:
            return
        entry = Entry(form, payload, provider, model, usage.prompt_tokens, usage.completion_tokens, usage.exact,
                      cost_usd)
        key = form_key(plan.digest, form, plan.with_usage if form == SSE else False)
        await self.backend.put(plan.namespace, key, entry, plan.config.ttl_s, plan.max_bytes)
        held = self.backend.bytes_held()
        if held is not None:
            metrics.CACHE_BYTES.set(held)

    def keep_only(self, snapshot: Snapshot) -> None:
        """Drop the caches of aliases and clients ``snap`` no longer gives one (on a reload)."""
        names = {"alias:" + name for name in snapshot.alias_cache}
        names.update("client:" + c.id for c in snapshot.clients.values() if c.cache is not None)
        self.backend.keep_only(names)
        held = self.backend.bytes_held()
        if held is not None:
            metrics.CACHE_BYTES.set(held)

    async def close(self) -> None:
        await self.backend.close()
