"""Where traces go: the OTLP/HTTP endpoint, its headers and the service name, from the config or
the standard ``OTEL_*`` environment variables (process environment over ``.env``).

``observability.otlp`` in config.yaml wins; without it ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(used as it is) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the collector's base URL: ``/v1/traces`` is
appended, as the OTLP exporter specification says) turns tracing on, with
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS`` (``name=value,…``,
values URL-encoded) and ``OTEL_SERVICE_NAME``. ``OTEL_SDK_DISABLED=true`` turns it off whatever
else is set. Nothing here imports OpenTelemetry: a gateway without tracing never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

TRACES_PATH = "/v1/traces"
DEFAULT_SERVICE_NAME = "llm-gateway"


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """An OTLP/HTTP (protobuf) trace export: the full URL spans are POSTed to, its headers (often a
    collector's token: never printed) and the ``service.name`` resource attribute."""

    endpoint: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    service_name: str = DEFAULT_SERVICE_NAME


def traces_url(base: str, per_signal: bool = False) -> str:
    """``base`` checked as an http(s) URL, with ``/v1/traces`` appended unless ``per_signal`` (a
    ``*_TRACES_ENDPOINT`` is used as it is) or it already ends so; ValueError if it is no URL."""
    parts = urlsplit(base.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL (got {base.strip()[:80]!r})")
    url = base.strip()
    if per_signal or parts.path.rstrip("/").endswith(TRACES_PATH):
        return url
    return url.rstrip("/") + TRACES_PATH


def redacted_url(url: str) -> str:
    """``url`` without user, password or query (what a log line may show of an endpoint)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``name=value`` pairs split by commas, values URL-encoded;
    ValueError (naming the pair's position, never its value) for a pair without ``=``."""
    pairs: list[tuple[str, str]] = []
    for n, item in enumerate(text.split(","), 1):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"header {n} is not name=value")
        pairs.append((unquote(name.strip()), unquote(value.strip())))
    return tuple(pairs)


def _checked_headers(headers: Mapping[str, str] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    items = tuple(headers.items()) if isinstance(headers, Mapping) else headers
    for name, value in items:
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"header {name[:40]!r} holds a line break or NUL")
    return items


def otlp_settings(endpoint: str | None, headers: Mapping[str, str], service_name: str | None,
                  environ: Mapping[str, str]) -> OtlpSettings | None:
    """The trace export, or None when tracing is off. ``endpoint``/``headers``/``service_name``:
    ``observability.otlp`` from the config (``endpoint`` None when that section is absent).
    ValueError with a message for the operator (where it comes from, never a header's value)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    service = service_name or environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    if endpoint is not None:
        return OtlpSettings(traces_url(endpoint), _checked_headers(headers), service)
    name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"  # the traces' own URL, used as it is
    base = environ.get(name, "").strip()
    per_signal = bool(base)
    if not base:
        name = "OTEL_EXPORTER_OTLP_ENDPOINT"  # the collector's base URL
        base = environ.get(name, "").strip()
    if not base:
        return None
    headers_name = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
    if not environ.get(headers_name, "").strip():
        headers_name = "OTEL_EXPORTER_OTLP_HEADERS"
    try:
        url = traces_url(base, per_signal)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    try:
        env_headers = _checked_headers(parse_headers(environ.get(headers_name, "")))
    except ValueError as exc:
        raise ValueError(f"{headers_name}: {exc}") from None
    return OtlpSettings(url, env_headers, service)
