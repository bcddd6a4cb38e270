"""Errors in Google's shape: ``{"error": {"code", "message", "status", "details"}}``. The gateway's
own code rides in an ``ErrorInfo`` detail as its ``reason``; an error with details of its own (a
guardrail's block: ``guardrail``, ``entity``) puts them in that detail's ``metadata``."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

# google.rpc.Code names by HTTP status (https://ai.google.dev/gemini-api/docs/troubleshooting)
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
           499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}


def status_name(status: int) -> str:
    return _STATUS.get(status, "FAILED_PRECONDITION" if 400 <= status < 500 else "INTERNAL")


def error_object(status: int, message: str, reason: str,
                 metadata: Mapping[str, str] | None = None) -> dict[str, object]:
    """The error; ``reason`` (the gateway's own code, e.g. ``budget_exceeded``) rides in an ErrorInfo."""
    info: dict[str, object] = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                               "domain": "llm-gateway"}
    if metadata:
        info["metadata"] = dict(metadata)
    return {"code": status, "message": message, "status": status_name(status), "details": [info]}


def error_body(status: int, message: str, reason: str, metadata: Mapping[str, str] | None = None) -> bytes:
    return orjson.dumps({"error": error_object(status, message, reason, metadata)})
