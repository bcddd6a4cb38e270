"""The ``otlp_logs`` sink: access records as OpenTelemetry log records over OTLP/HTTP (protobuf).

Built on the OpenTelemetry SDK's log record and its OTLP/HTTP exporter (imported only when such a
sink is configured). Each record becomes one log record: ``event_name`` ``gateway.access``, the
body the record's JSON object (what the file and webhook sinks write; ``content`` only with
``capture_content``), a few attributes to filter on (client, provider, model, status, request
id), severity INFO below 400, WARN for 4xx, ERROR for 5xx, the time the request arrived. The
exporter's blocking POST runs on a thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .base import SinkContext, SinkUnusable
from .batch import BatchSink, DeliveryError
from .config import OtlpLogsSinkConfig
from .record import AccessRecord

LOGS_PATH = "/v1/logs"
EVENT_NAME = "gateway.access"
_ATTRIBUTES = ("request_id", "client_id", "provider", "model", "status", "kind")


def logs_url(config: OtlpLogsSinkConfig, context: SinkContext) -> str:
    """The sink's own ``endpoint``, else the traces' collector with ``/v1/logs``."""
    if config.endpoint is not None:
        return config.endpoint
    if context.otlp is None:
        raise SinkUnusable("otlp_logs has no endpoint: set observability.otlp or give the sink an endpoint")
    base = context.otlp.endpoint.rstrip("/")
    if base.endswith("/v1/traces"):
        base = base[: -len("/v1/traces")]
    return base + LOGS_PATH


def _clean(value: Any) -> Any:
    """A JSON value as OTLP's AnyValue takes it: no nulls (dropped from maps and lists)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value if v is not None]
    return value


def _severity(status: int) -> tuple[SeverityNumber, str]:
    if status >= 500:
        return SeverityNumber.ERROR, "ERROR"
    if status >= 400:
        return SeverityNumber.WARN, "WARN"
    return SeverityNumber.INFO, "INFO"


class OtlpLogsSink(BatchSink):
    def __init__(self, config: OtlpLogsSinkConfig, context: SinkContext):
        super().__init__(config, config.retries, config.backoff_s, config.max_backoff_s)
        headers = dict(context.otlp.headers) if context.otlp is not None and config.endpoint is None else {}
        headers.update(config.headers)
        service = context.otlp.service_name if context.otlp is not None else "llm-gateway"
        self._exporter = OTLPLogExporter(endpoint=logs_url(config, context), headers=headers,
                                         timeout=config.timeout_s)
        self._resource = Resource.create({"service.name": service})
        self._scope = InstrumentationScope("gateway.sinks")

    def _log_record(self, record: AccessRecord) -> ReadableLogRecord:
        fields = record.fields()
        number, text = _severity(record.row.status)
        attributes = {name: fields[name] for name in _ATTRIBUTES if fields.get(name) is not None}
        log = LogRecord(timestamp=int(record.row.time * 1e9), observed_timestamp=time.time_ns(),
                        severity_number=number, severity_text=text, body=_clean(fields), attributes=attributes,
                        event_name=EVENT_NAME)
        return ReadableLogRecord(log, self._resource, self._scope)

    def _export(self, batch: list[AccessRecord]) -> LogRecordExportResult:
        return self._exporter.export([self._log_record(record) for record in batch])

    async def deliver(self, batch: list[AccessRecord]) -> None:
        result = await asyncio.to_thread(self._export, batch)
        if result != LogRecordExportResult.SUCCESS:
            raise DeliveryError("the OTLP collector did not take the batch (see the exporter's log line)")

    async def release(self) -> None:
        await asyncio.to_thread(self._exporter.shutdown)


def build(config: OtlpLogsSinkConfig, context: SinkContext) -> OtlpLogsSink:
    return OtlpLogsSink(config, context)
