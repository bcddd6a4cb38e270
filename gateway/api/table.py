"""The shape of the route table (``routes.py``): a route's paths, operations and resource, and who
may call it. ``openapi.py`` turns a table of these into the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..pipeline import Pipeline
from ..server.runtime import Runtime
from .dialects import OPENAI

# who may call an operation (``Operation.auth``)
PUBLIC = "public"
CLIENT = "client"  # any client key (or the master key)
ADMIN = "admin"  # the master key or an ``admin: true`` client's key
CLIENT_ERRORS = (400, 401, 403, 413, 429, 502, 503, 504)
OPENAI_PREFIXES = ("/v1", "/api/v1", "")  # also under /api/v1 and bare, as LiteLLM users call them
ANTHROPIC_PREFIXES = ("/v1", "/api/v1")
GOOGLE_VERSIONS = ("/v1beta", "/v1")  # Google's API serves its model methods under both
MIRRORED_PREFIX = "/v1"  # what ``server.base_paths`` serve again under each base path (``with_base_paths``)


@dataclass(frozen=True, slots=True)
class Services:
    """What resources are made from."""

    runtime: Runtime
    pipeline: Pipeline
    base_paths: tuple[str, ...] = ()  # ``server.base_paths`` as the server started (fixed until a restart)


@dataclass(frozen=True, slots=True)
class Operation:
    method: str  # GET | POST | HEAD | ...
    summary: str
    request: str | None = None  # the JSON request body's schema (a name in openapi.SCHEMAS)
    answer: str | None = None  # the 200 answer's JSON schema; None: ``media`` with no schema
    media: str = "application/json"  # the 200 answer's media type
    streams: bool = False  # may answer text/event-stream (``"stream": true``, or the endpoint always streams)
    auth: str = CLIENT  # PUBLIC | CLIENT | ADMIN
    query: tuple[str, ...] = ()  # query parameters it reads
    errors: tuple[int, ...] = CLIENT_ERRORS  # statuses it may answer with an error body


@dataclass(frozen=True, slots=True)
class Route:
    paths: tuple[str, ...]  # Falcon URI templates
    tag: str
    operations: tuple[Operation, ...]
    make: Callable[[Services], object]  # the resource, one for all its paths
    dialect: str = OPENAI  # the shape of its errors (``api/dialects.py``)


def prefixed(path: str, prefixes: tuple[str, ...] = OPENAI_PREFIXES) -> tuple[str, ...]:
    return tuple(prefix + path for prefix in prefixes)


def with_base_paths(table: tuple[Route, ...], base_paths: tuple[str, ...]) -> tuple[Route, ...]:
    """``table`` with every route under ``/v1/`` served again under each of ``base_paths``
    (``/api/litellm/v1/chat/completions`` beside ``/v1/chat/completions``): the same resource, the
    same operations and dialect, so the OpenAPI document and the error shapes follow."""
    if not base_paths:
        return table
    mirrored: list[Route] = []
    for entry in table:
        extra = tuple(base + path[len(MIRRORED_PREFIX):] for base in base_paths for path in entry.paths
                      if path.startswith(MIRRORED_PREFIX + "/"))
        mirrored.append(replace(entry, paths=entry.paths + extra) if extra else entry)
    return tuple(mirrored)
