"""``observability.sinks`` in config.yaml: one entry per destination, chosen by ``type``.

    observability:
      capture_content: false          # true: records carry the request and answer bodies
      sinks:
        - {type: file, path: logs/requests.jsonl, max_mb: 100, keep: 5}
        - type: webhook
          url: https://collector.example/ingest
          headers: {Authorization: "Bearer ${SINK_TOKEN}"}     # ${VAR}: the environment or .env
          batch_size: 100
          interval_s: 2
        - {type: otlp_logs}           # to the collector of observability.otlp

Every sink has a ``name`` (default: its type; two sinks of one type need names), its queue's
bound and its batch bounds; each type adds its own fields. A plugin's sink type (entry point
group ``gateway.sinks``) brings its config model, a subclass of ``SinkConfigBase``: it joins the
union through ``PLUGIN_TAG``, validated by its own model, errors with their place in the file.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Annotated, Literal, Self

from pydantic import Discriminator, Field, SerializeAsAny, Tag, WrapValidator, field_validator, model_validator

from ...core.policy import Strict
from ...plugins.loader import SINKS
from ...plugins.typed_items import TypedItems

SINK_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http"


class SinkConfigBase(Strict):
    """What every sink has. ``queue_size``: records waiting beyond it are dropped (and counted in
    ``gateway_sink_dropped_total``); a batch goes out when ``batch_size`` records wait or
    ``interval_s`` after the first of them arrived."""

    type: str
    name: str | None = Field(None, pattern=SINK_NAME)  # None: the type's name
    queue_size: int = Field(10_000, ge=1, le=1_000_000)
    batch_size: int = Field(100, ge=1, le=10_000)
    interval_s: float = Field(1.0, gt=0, le=300)

    @property
    def label(self) -> str:
        """The sink's name in metrics, readiness and the dashboard."""
        return self.name or self.type


def _headers(v: dict[str, str]) -> dict[str, str]:
    for name, value in v.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"'{name[:64]}' is not an HTTP header name")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"the value of header '{name}' holds a line break")  # never the value itself
    return v


def _http_url(v: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", v):
        raise ValueError("must be an http:// or https:// URL")
    return v


class FileSinkConfig(SinkConfigBase):
    """JSON lines appended to ``path`` (relative: to the gateway's working directory); past
    ``max_mb`` the file becomes ``path.1`` (the older ones ``.2`` … up to ``keep``) and a new one starts."""

    type: Literal["file"]
    path: str = Field(min_length=1)
    max_mb: float = Field(100.0, gt=0)
    keep: int = Field(5, ge=0, le=1000)


class WebhookSinkConfig(SinkConfigBase):
    """Batches POSTed to ``url`` as a JSON array. A failed POST (no answer, 408, 429, 5xx) is tried
    again ``retries`` times, ``backoff_s`` apart and doubling up to ``max_backoff_s``; another 4xx
    is not (those records are dropped and counted)."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = {}
    timeout_s: float = Field(10.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=100)
    backoff_s: float = Field(0.5, gt=0, le=300)
    max_backoff_s: float = Field(30.0, gt=0, le=3600)
    interval_s: float = Field(2.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @field_validator("headers")
    @classmethod
    def _checked_headers(cls, v: dict[str, str]) -> dict[str, str]:
        return _headers(v)


class OtlpLogsSinkConfig(SinkConfigBase):
    """The records as OpenTelemetry log records over OTLP/HTTP (protobuf), to ``endpoint`` (the
    logs URL, ``…/v1/logs``) or, without one, to the collector of ``observability.otlp``."""

    type: Literal["otlp_logs"]
    endpoint: str | None = None
    headers: dict[str, str] = {}
    timeout_s: float = Field(10.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=100)
    backoff_s: float = Field(1.0, gt=0, le=300)
    max_backoff_s: float = Field(30.0, gt=0, le=3600)

    @field_validator("headers")
    @classmethod
    def _checked_headers(cls, v: dict[str, str]) -> dict[str, str]:
        return _headers(v)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return v if v is None else _http_url(v)

    @model_validator(mode="after")
    def _exporter_installed(self) -> Self:
        if importlib.util.find_spec(OTLP_EXPORTER) is None:
            raise ValueError("type otlp_logs needs the package opentelemetry-exporter-otlp-proto-http, which is not "
                             "installed")
        return self


# A plugin's sink config models, by type name (``registry.register`` adds them).
PLUGIN_CONFIGS: dict[str, type[SinkConfigBase]] = {}
_ITEMS = TypedItems("sink", SINKS, {"file": "FileSink", "webhook": "WebhookSink", "otlp_logs": "OtlpLogsSink"},
                    lambda: PLUGIN_CONFIGS)
SINK_TAGS = _ITEMS.tags  # what pydantic puts in an error's location to name the union member

SinkConfig = Annotated[
    Annotated[FileSinkConfig, Tag("FileSink")]
    | Annotated[WebhookSinkConfig, Tag("WebhookSink")]
    | Annotated[OtlpLogsSinkConfig, Tag("OtlpLogsSink")]
    | Annotated[SerializeAsAny[SinkConfigBase], WrapValidator(_ITEMS.by_plugin_model), Tag(_ITEMS.plugin_tag)]
    | Annotated[SinkConfigBase, WrapValidator(_ITEMS.unknown), Tag(_ITEMS.unknown_tag)],
    Discriminator(_ITEMS.tag),
]


def unique_labels(sinks: list[SinkConfigBase]) -> list[SinkConfigBase]:
    """Each sink's label (its name, else its type) must be its own: metrics and handovers go by it."""
    seen: set[str] = set()
    for sink in sinks:
        if sink.label in seen:
            hint = "" if sink.name else f" (two '{sink.type}' sinks: give each a name)"
            raise ValueError(f"sink name '{sink.label}' is used twice{hint}")
        seen.add(sink.label)
    return sinks
