"""The ``storage`` section of config.yaml.

::

    storage:                      # default: everything in one SQLite file
      type: sqlite                # memory | sqlite | redis | postgres
      path: data/gateway.db
      runtime: {type: redis, addr: "redis:6379"}           # windows, cooldowns, spend (optional)
      ledger: {type: postgres, dsn: "postgres://…/gw"}     # usage ledger and clients (optional)
      retention_days: 90
      on_unavailable: open        # open: serve and count locally | closed: answer 503

``runtime`` and ``ledger`` default to the top-level backend; the same backend in both roles
is one connection. This module imports nothing from ``gateway.config`` (the schema imports it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BackendType = Literal["memory", "sqlite", "redis", "postgres"]
DEFAULT_SQLITE_PATH = "data/gateway.db"
_NEEDS: dict[str, str] = {"redis": "addr", "postgres": "dsn"}
_OWN = {"sqlite": {"path"}, "redis": {"addr", "prefix"}, "postgres": {"dsn"}, "memory": set[str]()}


class Backend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: BackendType = "sqlite"
    path: str | None = None  # sqlite: the database file (default data/gateway.db, relative to the working dir)
    addr: str | None = Field(None, repr=False)  # redis: "host:6379", or redis:// / rediss:// URL (password, db, TLS)
    dsn: str | None = Field(None, repr=False)  # postgres: "postgres://user:pass@host:5432/db" or key=value form
    prefix: str | None = None  # redis: key prefix (default "gw:"), to share one Redis between gateways

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Backend:
        needed = _NEEDS.get(self.type)
        if needed is not None and not getattr(self, needed):
            raise ValueError(f"storage type '{self.type}' needs '{needed}'")
        foreign = sorted(f for f in ("path", "addr", "dsn", "prefix")
                         if getattr(self, f) is not None and f not in _OWN[self.type])
        if foreign:
            raise ValueError(f"storage type '{self.type}' takes no {', '.join(repr(f) for f in foreign)}")
        return self

    def same_as(self, other: Backend) -> bool:
        return (self.type, self.path or "", self.addr, self.dsn, self.prefix) == \
            (other.type, other.path or "", other.addr, other.dsn, other.prefix)


class Storage(Backend):
    runtime: Backend | None = None  # limit windows, cooldowns/quarantine/circuit marks, spend
    ledger: Backend | None = None  # the usage ledger and the client directory
    retention_days: float | None = Field(90.0, gt=0)  # ledger rows older than this are deleted; None: kept
    on_unavailable: Literal["open", "closed"] = "open"
    ledger_flush_s: float = Field(0.5, gt=0, le=60)  # ledger rows are written in batches this often

    def runtime_backend(self) -> Backend:
        return self.runtime or self._own()

    def ledger_backend(self) -> Backend:
        return self.ledger or self._own()

    def _own(self) -> Backend:
        return Backend(type=self.type, path=self.path, addr=self.addr, dsn=self.dsn, prefix=self.prefix)
