"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``; an error with
details of its own (a guardrail's block: ``code``, ``guardrail``, ``entity``) carries them beside
the message."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors)
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "not_found_error", 408: "timeout_error", 413: "request_too_large",
          429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
          504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    return _TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def error_object(status: int, message: str, details: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"type": error_type(status), "message": message, **(details or {})}


def error_body(status: int, message: str, details: Mapping[str, str] | None = None) -> bytes:
    return orjson.dumps({"type": "error", "error": error_object(status, message, details)})
