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

A plugin's backend (entry point group ``gateway.stores``, ``plugins.py``) is named by its type
like the built-in ones; its own fields sit beside ``type`` and are validated by its config model
into ``options`` (errors keep their place in the file).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..plugins.loader import STORES, failure

BackendType = Literal["memory", "sqlite", "redis", "postgres"]
BUILT_IN_TYPES: tuple[BackendType, ...] = ("memory", "sqlite", "redis", "postgres")
# A plugin backend's config model, by type name (``plugins.register`` adds them).
PLUGIN_BACKENDS: dict[str, type[BaseModel]] = {}
# ``storage``'s own fields: everything else beside a plugin backend's type is that backend's
_STORAGE_FIELDS = frozenset({"type", "runtime", "ledger", "retention_days", "on_unavailable", "ledger_flush_s"})
DEFAULT_SQLITE_PATH = "data/gateway.db"
_NEEDS: dict[str, str] = {"redis": "addr", "postgres": "dsn"}
_OWN = {"sqlite": {"path"}, "redis": {"addr", "prefix"}, "postgres": {"dsn"}, "memory": set[str]()}


class Backend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "sqlite"  # one of BUILT_IN_TYPES or a plugin's
    path: str | None = None  # sqlite: the database file (default data/gateway.db, relative to the working dir)
    addr: str | None = Field(None, repr=False)  # redis: "host:6379", or redis:// / rediss:// URL (password, db, TLS)
    dsn: str | None = Field(None, repr=False)  # postgres: "postgres://user:pass@host:5432/db" or key=value form
    prefix: str | None = None  # redis: key prefix (default "gw:"), to share one Redis between gateways
    options: SerializeAsAny[BaseModel] | None = None  # a plugin backend's fields, validated by its model

    @model_validator(mode="wrap")
    @classmethod
    def _plugin_options(cls, data: Any, handler: Any) -> Any:
        """A plugin backend's fields, taken out and validated by its model into ``options``."""
        kind = data.get("type") if isinstance(data, dict) else None
        model = PLUGIN_BACKENDS.get(kind) if isinstance(kind, str) else None
        if model is None or not isinstance(data, dict) or "options" in data:
            return handler(data)
        options = model.model_validate({k: v for k, v in data.items() if k not in _STORAGE_FIELDS})
        return handler({**{k: v for k, v in data.items() if k in _STORAGE_FIELDS}, "options": options})

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v in BUILT_IN_TYPES or v in PLUGIN_BACKENDS:
            return v
        why = failure(STORES, v)
        if why is not None:
            raise PydanticCustomError("plugin_failed", "{why}", {"why": why})
        names = [*BUILT_IN_TYPES, *sorted(PLUGIN_BACKENDS)]
        expected = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Backend:
        if self.type in PLUGIN_BACKENDS:
            return self
        if self.options is not None:
            raise ValueError(f"storage type '{self.type}' takes no 'options'")
        needed = _NEEDS.get(self.type)
        if needed is not None and not getattr(self, needed):
            raise ValueError(f"storage type '{self.type}' needs '{needed}'")
        foreign = sorted(f for f in ("path", "addr", "dsn", "prefix")
                         if getattr(self, f) is not None and f not in _OWN[self.type])
        if foreign:
            raise ValueError(f"storage type '{self.type}' takes no {', '.join(repr(f) for f in foreign)}")
        return self

    def same_as(self, other: Backend) -> bool:
        return (self.type, self.path or "", self.addr, self.dsn, self.prefix, self.options) == \
            (other.type, other.path or "", other.addr, other.dsn, other.prefix, other.options)


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
        return Backend(type=self.type, path=self.path, addr=self.addr, dsn=self.dsn, prefix=self.prefix,
                       options=self.options)
