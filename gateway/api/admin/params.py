"""Request bodies (pydantic models) and query parameters of the admin API, and how their
errors become the gateway's OpenAI-shaped 400 naming the field (``param``)."""

from __future__ import annotations

import math
import re
import time
from typing import Any, TypeVar

import falcon.asgi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...config.schema import check_client_key
from ...core.policy import Budget, Limits
from ...errors import InvalidRequest
from ..common import parse_json_object, read_body

MAX_ADMIN_BODY = 64 * 1024
CLIENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@:\-]{0,127}$"
M = TypeVar("M", bound=BaseModel)


def _sendable(key: str | None) -> str | None:
    """A key a client could send in a header (``check_client_key``); the message never holds it."""
    if key is not None:
        check_client_key(key)
    return key


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientChanges(_Body):
    """``PUT /clients/{id}``: the fields given replace the client's; the others stay."""

    description: str = Field("", max_length=1000)
    allowed_providers: list[str] = ["*"]
    allowed_models: list[str] = ["*"]
    limits: Limits = Limits()
    budget: Budget = Budget()
    admin: bool = False

    @field_validator("allowed_providers", "allowed_models")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        if not values or any(not v or len(v) > 200 or v != v.strip() for v in values):
            raise ValueError('must be a non-empty list of names (["*"] for all)')
        return values


class NewClient(ClientChanges):
    """``POST /clients``."""

    client_id: str = Field(pattern=CLIENT_ID)
    api_key: str | None = Field(None, min_length=8, max_length=512, repr=False)

    @field_validator("client_id")
    @classmethod
    def _not_a_route(cls, v: str) -> str:
        if v == "list":
            raise ValueError("'list' is taken by GET /clients/list")
        return v

    @field_validator("api_key")
    @classmethod
    def _key_sendable(cls, v: str | None) -> str | None:
        return _sendable(v)


class NewKey(_Body):
    """``POST /clients/{id}/rotate`` (body optional) and ``POST /providers/{id}/keys``."""

    api_key: str | None = Field(None, min_length=8, max_length=4096, repr=False)

    @field_validator("api_key")
    @classmethod
    def _key_sendable(cls, v: str | None) -> str | None:
        return _sendable(v)


def _field(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


def invalid(exc: ValidationError) -> InvalidRequest:
    """The first problem as a 400 naming its field; never the value sent (it may be a key)."""
    error = exc.errors()[0]
    field = _field(error)
    message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
    return InvalidRequest(f"Invalid '{field}': {message}.", param=field)


async def read_model(req: falcon.asgi.Request, model: type[M], optional: bool = False) -> tuple[M, set[str]]:
    """The JSON body as ``model`` and the fields it set. ``optional``: an empty body is ``{}``."""
    raw = await read_body(req, MAX_ADMIN_BODY)
    data = {} if optional and not raw.strip() else parse_json_object(raw)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None
    return parsed, set(parsed.model_fields_set)


def number(req: falcon.asgi.Request, name: str, default: float) -> float:
    """A finite number query parameter (unix seconds, a width), or ``default`` when absent."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid '{name}': must be a number.", param=name) from None
    if not math.isfinite(value):
        raise InvalidRequest(f"Invalid '{name}': must be a finite number.", param=name)
    return value


def period(req: falcon.asgi.Request, default_span_s: float | None) -> tuple[float, float]:
    """``start`` and ``end`` (unix seconds): ``end`` defaults to now, ``start`` to ``end`` minus
    ``default_span_s`` (None: from the beginning)."""
    end = number(req, "end", time.time())
    start = number(req, "start", 0.0 if default_span_s is None else end - default_span_s)
    if start > end:
        raise InvalidRequest("Invalid 'start': it is after 'end'.", param="start")
    return start, end


def choice(req: falcon.asgi.Request, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise InvalidRequest(f"Invalid '{name}': must be one of {', '.join(allowed)}.", param=name)
    return raw


def integer(req: falcon.asgi.Request, name: str, default: int, low: int, high: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d{1,9}", raw) or not low <= int(raw) <= high:
        raise InvalidRequest(f"Invalid '{name}': must be a whole number from {low} to {high}.", param=name)
    return int(raw)
