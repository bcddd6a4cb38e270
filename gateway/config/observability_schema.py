"""The ``observability:`` section of config.yaml: trace export (``otlp``), the sinks of access
records (``sinks``), and whether content is captured (``capture_content``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..core.policy import Strict
from ..observability.sinks.config import SinkConfig, SinkConfigBase, unique_labels


class OtlpConfig(Strict):
    """``observability.otlp``: where spans go over OTLP/HTTP (protobuf). ``endpoint``: the
    collector's base URL (``http://collector:4318``; ``/v1/traces`` is appended unless the URL
    ends with it); ``headers``: sent with every export (a token: write it as ``${VAR}``)."""

    endpoint: str = Field(min_length=1)
    headers: dict[str, str] = {}
    service_name: str | None = Field(None, min_length=1)  # None: OTEL_SERVICE_NAME, else llm-gateway


class ObservabilityConfig(Strict):
    """``observability:``. ``otlp``: trace export (restart-only; without it the ``OTEL_EXPORTER_OTLP_*``
    environment decides), also the collector ``otlp_logs`` sinks send to; ``sinks``: where each
    request's access record goes besides the ledger (gateway/observability/sinks/; applied live);
    ``capture_content``: prompts, answers and tool arguments are recorded in spans and records
    only when true (applied live)."""

    otlp: OtlpConfig | None = None
    capture_content: bool = False
    sinks: list[SinkConfig] = []

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, v: list[SinkConfigBase]) -> list[SinkConfigBase]:
        return unique_labels(v)
