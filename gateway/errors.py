"""Typed errors and their one mapping to OpenAI-shaped JSON.

Every failure the gateway reports to a client is one of these classes. The HTTP layer turns
them into ``{"error": {"message", "type", "code"}}`` in exactly one place (``to_body``).
Messages must never contain a provider key, a client key or the master key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from .core.targets import Target


class GatewayError(Exception):
    status = 500
    type = "api_error"
    code = "internal_error"
    # set by the dispatcher on the error a request ends with: the last (target, key label) it tried
    tried: tuple[Target, str] | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.param = param

    def to_body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def details(self) -> dict[str, str]:
        """Fields beside the message that every dialect's error body carries (none for most errors)."""
        return {}


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": param}})


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "authorization_error"
    code = "provider_not_allowed"


class AdminRequired(PermissionDenied):
    """A valid key that is neither the master key nor an ``admin: true`` client's."""

    code = "admin_required"


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFound(InvalidRequest):
    code = "model_not_found"


class GuardrailBlocked(InvalidRequest):
    """A guard blocked the request (or the answer): the guard's name and the entity type it found
    are in the message and beside it, never the matched text (``guardrails.Block``)."""

    code = "guardrail_blocked"

    def __init__(self, message: str, *, guardrail: str, entity: str):
        super().__init__(message)
        self.guardrail = guardrail
        self.entity = entity

    def to_body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "code": self.code,
                                       "param": None, "guardrail": self.guardrail, "entity": self.entity}})

    def details(self) -> dict[str, str]:
        return {"code": self.code, "guardrail": self.guardrail, "entity": self.entity}


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Conflict(GatewayError):
    """The change clashes with what exists: a taken client id or key, a client from config.yaml
    (read-only through the admin API), a provider key already in the pool."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    """The client did not send its whole request body within ``server.body_timeout_s``."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"

    def __init__(self, message: str):
        super().__init__(message, headers={"Connection": "close"})


class RateLimited(GatewayError):
    """The client's own limit is reached (429 with Retry-After)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, headers: dict[str, str] | None = None):
        merged = {"Retry-After": str(max(1, int(retry_after + 0.999)))}
        merged.update(headers or {})
        super().__init__(message, headers=merged)
        self.retry_after = retry_after


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class AllKeysRateLimited(RateLimited):
    """Every key of every target is cooling down or at its limit."""

    code = "all_keys_rate_limited"


class ProviderError(GatewayError):
    status = 502
    type = "provider_error"
    code = "provider_error"


class ProviderUnavailable(ProviderError):
    status = 503
    code = "provider_unavailable"


class UpstreamTimeout(ProviderError):
    status = 504
    code = "upstream_timeout"


class UpstreamRejectedRequest(GatewayError):
    """The upstream refused the request itself (a 4xx other than 401/403/429): not retried."""

    type = "invalid_request_error"
    code = "upstream_rejected_request"

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status if 400 <= status < 500 else 400


class StoreUnavailable(GatewayError):
    """The shared store (Redis, PostgreSQL) cannot be reached and ``storage.on_unavailable`` is
    ``closed``, or a client key could only be checked against the unreachable client directory."""

    status = 503
    type = "api_error"
    code = "store_unavailable"

    def __init__(self, message: str = "The gateway's store is unreachable; retry shortly."):
        super().__init__(message, headers={"Retry-After": "1"})
