"""Errors in Google's shape: ``{"error": {"code", "message", "status", "details"}}``."""

from __future__ import annotations

import orjson

# google.rpc.Code names by HTTP status (https://ai.google.dev/gemini-api/docs/troubleshooting)
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
           499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}


def status_name(status: int) -> str:
    return _STATUS.get(status, "FAILED_PRECONDITION" if 400 <= status < 500 else "INTERNAL")


def error_object(status: int, message: str, reason: str) -> dict[str, object]:
    """The error; ``reason`` (the gateway's own code, e.g. ``budget_exceeded``) rides in an ErrorInfo."""
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "llm-gateway"}]
    return {"code": status, "message": message, "status": status_name(status), "details": details}


def error_body(status: int, message: str, reason: str) -> bytes:
    return orjson.dumps({"error": error_object(status, message, reason)})
