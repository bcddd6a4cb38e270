"""The guardrails on MCP tool calls: a call's arguments are its input, its result its output.

The guards a call passes are ``guardrails.default`` and its client's (a tool call names no model
alias). Every string of the arguments (keys excluded) is a text; of the result, each text content
item, an embedded resource's text and every string of ``structuredContent``. A mask rewrites the
arguments the server receives; ``restore: true`` puts the originals back in the result the client
receives.

A block of the arguments is a JSON-RPC error (``-32602``, HTTP 400) whose ``data`` holds
``code: guardrail_blocked``, the guard and the entity: the tool did not run. A block of the result
is a tool error result saying which guard blocked it (the tool ran and is charged; the model
reads why there is no result), with the same fields in ``_meta``. Neither holds the matched text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..config.snapshot import Snapshot
from ..core.targets import ClientSpec
from ..guardrails.body import BodyTexts, Path, json_texts
from ..guardrails.engine import RequestGuard
from ..guardrails.events import Block
from ..guardrails.remote import Remote
from .protocol import INVALID_PARAMS, RpcError, tool_error

META_KEY = "llm-gateway/guardrail"  # where a blocked result names its guard (``_meta``)


def tool_guard(snapshot: Snapshot, client: ClientSpec,
               remote: Callable[[Snapshot], Remote] | None) -> RequestGuard | None:
    """The guards of one tool call (None: none apply)."""
    return snapshot.guardrails.guard_for(None, client, lambda: remote(snapshot) if remote is not None else Remote())


def _fields(block: Block) -> dict[str, str]:
    return {"code": "guardrail_blocked", "guardrail": block.guardrail, "entity": block.entity}


def blocked_arguments(block: Block) -> RpcError:
    return RpcError(INVALID_PARAMS, block.message(), _fields(block))


def blocked_result(block: Block) -> dict[str, Any]:
    return {**tool_error(block.message()), "_meta": {META_KEY: _fields(block)}}


async def guard_arguments(guard: RequestGuard, arguments: Any) -> tuple[Any, Block | None]:
    """The arguments the server gets (masked where a guard masks), or why none: the block."""
    if not guard.guards_input or not isinstance(arguments, dict):
        return arguments, None
    found = json_texts(arguments)
    if not found.texts:
        return arguments, None
    verdict = await guard.check_texts(found.texts, "input")
    if verdict.blocked is not None:
        return arguments, verdict.blocked
    return (found.replaced(arguments, verdict.texts) if verdict.changed(found.texts) else arguments), None


def _result_texts(result: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    content = result.get("content")
    for i, item in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text" and isinstance(item.get("text"), str):
            yield ("content", i, "text"), item["text"]
        resource = item.get("resource")
        if item.get("type") == "resource" and isinstance(resource, dict) and isinstance(resource.get("text"), str):
            yield ("content", i, "resource", "text"), resource["text"]
    structured = result.get("structuredContent")
    if isinstance(structured, dict):
        inner = json_texts(structured, ("structuredContent",))
        yield from zip(inner.paths, inner.texts, strict=True)


async def guard_result(guard: RequestGuard, result: dict[str, Any]) -> tuple[dict[str, Any], Block | None]:
    """The result the client gets (masked, placeholders restored), or the block that replaces it."""
    if not guard.guards_output:
        return result, None
    pairs = list(_result_texts(result))
    if not pairs:
        return result, None
    found = BodyTexts(tuple(p for p, _ in pairs), tuple(t for _, t in pairs))
    verdict = await guard.check_texts(found.texts, "output")
    if verdict.blocked is not None:
        return blocked_result(verdict.blocked), verdict.blocked
    return (found.replaced(result, verdict.texts) if verdict.changed(found.texts) else result), None
