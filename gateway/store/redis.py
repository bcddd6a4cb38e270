"""The shared store for several workers and replicas: Redis, every decision in one Lua script.

The request path (windows, marks, spend, the directory's lookups) runs on one multiplexed
connection (``redis_wire``): a request's admission is one script (the budget hold and every
window, all or none: ``reserve_all``), its settle another. The rest (client changes, the
ledger, admin queries) goes through redis-py.

Time comes from the Redis server (``TIME``), so replicas with skewed clocks still share one
window. The keys of one window carry a hash tag (``{name}``), so a Redis Cluster would keep them
on one slot; the admission script spans a client's several windows and its spend, so it needs
one Redis (or a primary with replicas), not a Cluster, as the store always did (it connects to
one server). Idle keys expire by themselves (windows after their span, spend after its period).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import lua
from .base import (
    Ask,
    Batch,
    BudgetAsk,
    ClientExists,
    ClientNotFound,
    ClientRecord,
    GroupBy,
    Hold,
    LedgerRow,
    Reservation,
    SeriesPoint,
    Spend,
    StoreUnavailable,
    UsageGroup,
    UsageTotals,
    WindowResult,
)
from .common import (
    LedgerBuffer,
    client_from_dict,
    client_to_dict,
    groups_of,
    last_used_of,
    new_id,
    newest_first,
    period_ends,
    periods,
    row_from_values,
    row_values,
    series_of,
    totals_of,
)
from .redis_wire import RedisWire, ReplyError, Script

DAY_KEEP_S = 40 * 86400  # a day's spend is kept this long after the day ends; a month's:
MONTH_KEEP_S = 400 * 86400
FEED_ROWS = 10_000  # the live request log (a stream) keeps about this many rows for its readers
RECENT_SCAN_ROWS = 20_000  # recent_rows of one client looks this far back at most


def redis_url(addr: str) -> str:
    """``host:6379`` (the client-management document's form) or a ``redis://``/``rediss://`` URL."""
    return addr if "://" in addr else f"redis://{addr}"


def redacted(addr: str) -> str:
    """The address without its user and password, for messages and logs."""
    parts = urlsplit(redis_url(addr))
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisStore:
    """The ``Store`` contract on Redis. Build it with ``await RedisStore.open(addr)``."""

    name = "redis"

    def __init__(self, addr: str, prefix: str = "gw:", ledger_interval_s: float = 0.5,
                 timeout_s: float = 5.0) -> None:
        self.where = redacted(addr)
        self.prefix = prefix
        # one retry, on a fresh connection, when a pooled one turns out dead (Redis restarted): the
        # command never reached a server, so it is not counted twice; timeouts are never retried
        self._redis = aioredis.Redis.from_url(redis_url(addr), socket_timeout=timeout_s,
                                              socket_connect_timeout=timeout_s, decode_responses=True,
                                              retry=Retry(NoBackoff(), 1),
                                              retry_on_error=[RedisConnectionError])
        self._scripts = {name: self._redis.register_script(body) for name, body in lua.SCRIPTS.items()}
        self._wire = RedisWire(redis_url(addr), timeout_s)
        self._lua = {name: Script(body) for name, body in lua.SCRIPTS.items()}
        self._buffer = LedgerBuffer(self._write_rows, interval_s=ledger_interval_s)

    @classmethod
    async def open(cls, addr: str, prefix: str = "gw:", ledger_interval_s: float = 0.5) -> RedisStore:
        store = cls(addr, prefix, ledger_interval_s)
        try:
            await store.ping()
        except StoreUnavailable:
            await store._wire.close()
            await store._redis.aclose()
            raise
        return store

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"redis store {self.where}: unreachable ({type(exc).__name__})") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"redis store {self.where}: {type(exc).__name__}: {exc}") from exc

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of ``lua.SCRIPTS`` on the request path's connection."""
        try:
            return await self._wire.evalsha(self._lua[name], keys, args)
        except OSError as exc:  # ConnectionError, TimeoutError
            raise StoreUnavailable(f"redis store {self.where}: unreachable ({type(exc).__name__})") from exc
        except ReplyError as exc:
            raise StoreUnavailable(f"redis store {self.where}: {exc}") from exc

    async def _call(self, *args: Any) -> Any:
        """One command on the request path's connection."""
        try:
            return await self._wire.call(*args)
        except OSError as exc:
            raise StoreUnavailable(f"redis store {self.where}: unreachable ({type(exc).__name__})") from exc
        except ReplyError as exc:
            raise StoreUnavailable(f"redis store {self.where}: {exc}") from exc

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _window_keys(self, window: str) -> list[str]:
        tag = "{" + window + "}"
        return [self._k("win", tag, "at"), self._k("win", tag, "amt"), self._k("win", tag, "total")]

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        entry = new_id()
        ok, now, wait, used, reset = await self._script("reserve", self._window_keys(window),
                                                        [repr(limit), repr(need), repr(window_s), entry])
        reservation = Reservation(window, entry, need, float(now), window_s) if int(ok) else None
        return WindowResult(reservation, float(wait), float(used), float(reset))

    async def settle(self, reservation: Reservation, actual: float) -> None:
        await self._script("settle", self._window_keys(reservation.window), [reservation.entry, repr(actual)])

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        keys: list[str] = []
        args: list[Any] = ["0", "", ""]
        todo = list(asks)
        if budget is not None:
            day, month = periods(budget.at)
            keys += [self._spend_key(budget.client_id, day), self._spend_key(budget.client_id, month)]
            args = ["1", "" if budget.daily_usd is None else repr(budget.daily_usd),
                    "" if budget.monthly_usd is None else repr(budget.monthly_usd)]
            todo.insert(0, Ask(budget.window, 0.0, budget.need, budget.window_s))  # its limit: from the spend
        entries = [new_id() for _ in todo]
        for ask, entry in zip(todo, entries, strict=True):
            keys += self._window_keys(ask.window)
            args += [repr(ask.limit), repr(ask.need), repr(ask.window_s), entry]
        found = await self._script("reserve_all", keys, args)
        refused, now = int(found[0]), float(found[1])
        results = []
        for i, ask in enumerate(todo[:(len(found) - 4) // 3]):
            wait, used, reset = found[4 + 3 * i:7 + 3 * i]
            held = None if refused else Reservation(ask.window, entries[i], ask.need, now, ask.window_s)
            results.append(WindowResult(held, float(wait), float(used), float(reset)))
        spend = Spend(float(found[2]), float(found[3]), 0.0) if budget is not None else None
        return Batch(tuple(results), bool(refused), spend)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        if not settles:
            return
        keys: list[str] = []
        args: list[str] = []
        for reservation, actual in settles:
            keys += self._window_keys(reservation.window)
            args += [reservation.entry, repr(actual)]
        await self._script("settle_all", keys, args)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        return float(await self._script("set_mark", [self._k("mark", name)], [repr(ttl_s)]))

    async def clear_mark(self, name: str) -> None:
        await self._call("DEL", self._k("mark", name))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        if not names:
            return []
        left = await self._script("marks_left", [self._k("mark", n) for n in names], [])
        return [float(x) for x in left]

    # spend
    def _spend_key(self, client_id: str, period: str) -> str:
        return self._k("spend", "{" + client_id + "}", period)

    def _holds_key(self, client_id: str) -> str:
        return self._k("holds", "{" + client_id + "}")

    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        when = await self._now() if at is None else at
        day, month = periods(when)
        day_end, month_end = period_ends(when)
        await self._script("add_spend", [self._spend_key(client_id, day), self._spend_key(client_id, month)],
                           [repr(usd), int(day_end + DAY_KEEP_S), int(month_end + MONTH_KEEP_S)])

    async def _now(self) -> float:
        seconds, micros = await self._call("TIME")
        return int(seconds) + int(micros) / 1e6

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        day, month = periods(await self._now() if at is None else at)
        keys = [self._spend_key(client_id, day), self._spend_key(client_id, month), self._holds_key(client_id)]
        day_usd, month_usd, held = await self._script("spend", keys, [])
        return Spend(float(day_usd or 0.0), float(month_usd or 0.0), float(held))

    async def hold_spend(self, client_id: str, usd: float, ttl_s: float) -> Hold:
        hold = Hold(client_id, new_id(), usd)
        await self._script("hold", [self._holds_key(client_id)], [hold.hold_id, repr(usd), repr(ttl_s)])
        return hold

    async def release_spend(self, hold: Hold) -> None:
        await self._call("HDEL", self._holds_key(hold.client_id), hold.hold_id)

    # object pins
    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        await self._call("SET", self._k("pin", object_id), value, "PX", max(1, int(ttl_s * 1000)))

    async def get_pin(self, object_id: str) -> str | None:
        found = await self._call("GET", self._k("pin", object_id))
        return None if found is None else str(found)

    async def clear_pin(self, object_id: str) -> None:
        await self._call("DEL", self._k("pin", object_id))

    # client directory
    def _dir_keys(self) -> list[str]:
        return [self._k(n) for n in ("clients", "client_digests", "clients_version", "client_last_used",
                                     "client_keys", "client_created")]

    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if not record.created_at:
            record = replace(record, created_at=await self._now())
        args = [record.id, _fields_json(record), record.key_digest.hex(), repr(record.created_at)]
        if not int(await self._script("client_create", self._dir_keys(), args)):
            raise ClientExists(f"a client with id {record.id!r} or the same key already exists")
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return _client(await self._script("client_get", self._dir_keys(), [client_id, ""]))

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        return _client(await self._script("client_get", self._dir_keys(), ["", digest.hex()]))

    async def list_clients(self) -> list[ClientRecord]:
        async with self._guard():
            ids = sorted(str(i) for i in await self._redis.hkeys(self._k("clients")))
        found = [await self.get_client(i) for i in ids]
        return [c for c in found if c is not None]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        found = await self._script("client_update", self._dir_keys(), [record.id, _fields_json(record)])
        client = _client(found)
        if client is None:
            raise ClientNotFound(f"no client with id {record.id!r}")
        return client

    async def delete_client(self, client_id: str) -> bool:
        return bool(int(await self._script("client_delete", self._dir_keys(), [client_id])))

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        found = await self._script("client_rotate", self._dir_keys(), [client_id, new_digest.hex()])
        if found == "exists":
            raise ClientExists("another client has this key")
        client = _client(found)
        if client is None:
            raise ClientNotFound(f"no client with id {client_id!r}")
        return client

    async def directory_version(self) -> int:
        return int(await self._call("GET", self._k("clients_version")) or 0)

    # ledger
    def record(self, row: LedgerRow) -> None:
        self._buffer.record(row)

    async def flush(self) -> int:
        return await self._buffer.flush()

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        members = {json.dumps([new_id(), *row_values(r)]): r.time for r in rows}
        async with self._guard(), self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._k("ledger"), members)
            self._feed_rows(pipe, list(members))
            for client_id, at in last_used_of(rows).items():
                await self._scripts["touch"](keys=[self._k("client_last_used"), self._k("clients")],
                                       args=[client_id, repr(at)], client=pipe)
            await pipe.execute()

    async def _rows(self, start: float, end: float) -> list[LedgerRow]:
        async with self._guard():
            members = await self._redis.zrangebyscore(self._k("ledger"), start, end)
        return [row_from_values(json.loads(str(m))[1:]) for m in members]

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        return totals_of(client_id, (r for r in await self._rows(start, end) if r.client_id == client_id))

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        rows = await self._rows(start, end)
        return groups_of(group_by, (r for r in rows if (client_id is None or r.client_id == client_id)
                                    and (kind is None or r.kind == kind)))

    async def prune_ledger(self, before: float) -> int:
        async with self._guard():
            return int(await self._redis.zremrangebyscore(self._k("ledger"), "-inf", f"({before!r}"))

    # admin queries (issue 10)
    def _feed_rows(self, pipe: Any, members: list[str]) -> None:
        """Append the rows to the live request log (a Redis stream capped near ``FEED_ROWS`` entries)."""
        for member in members:
            pipe.xadd(self._k("feed"), {"row": member}, maxlen=FEED_ROWS, approximate=True)

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        rows = await self._rows(start, end)
        return series_of((r for r in rows if client_id is None or r.client_id == client_id), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        found: list[LedgerRow] = []
        page = max(limit, 200)
        for offset in range(0, RECENT_SCAN_ROWS, page):  # newest first, a page at a time, until enough
            async with self._guard():
                members = await self._redis.zrevrange(self._k("ledger"), offset, offset + page - 1)
            rows = [row_from_values(json.loads(str(m))[1:]) for m in members]
            found += [r for r in rows if client_id is None or r.client_id == client_id]
            if len(found) >= limit or len(members) < page:
                break
        return newest_first(found, limit)

    async def ledger_cursor(self) -> str:
        async with self._guard():
            last = await self._redis.xrevrange(self._k("feed"), count=1)
        return str(last[0][0]) if last else "0-0"

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        async with self._guard():
            found: Any = await self._redis.xread({self._k("feed"): cursor or "0-0"}, count=limit)
        entries = _stream_entries(found)
        rows = [row_from_values(json.loads(str(fields["row"]))[1:]) for _, fields in entries]
        return rows, str(entries[-1][0]) if entries else (cursor or "0-0")

    # lifecycle
    async def ping(self) -> None:
        await self._call("PING")

    async def close(self) -> None:
        try:
            await self._buffer.close()
        finally:
            await self._wire.close()
            await self._redis.aclose()


def _stream_entries(found: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of one stream in an XREAD answer (RESP2: ``[[name, entries]]``; RESP3: ``{name: entries}``)."""
    if not found:
        return []
    per_stream = next(iter(found.values())) if isinstance(found, dict) else found[0][1]
    return [(str(entry_id), dict(fields)) for entry_id, fields in per_stream]


def _fields_json(record: ClientRecord) -> str:
    """The fields an update replaces (not the key digest, created_at or last_used)."""
    data = client_to_dict(record)
    for kept in ("key_digest", "created_at", "last_used"):
        data.pop(kept)
    return json.dumps(data)


def _client(found: Any) -> ClientRecord | None:
    """A record from a script's ``[fields, digest, created_at, last_used]`` answer (None: no such client)."""
    if not found:
        return None
    fields, digest, created_at, last_used = found
    data = json.loads(fields)
    data.update(key_digest=digest, created_at=float(created_at or 0.0),
                last_used=None if last_used is None else float(last_used))
    return client_from_dict(data)
