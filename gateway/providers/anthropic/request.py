"""OpenAI chat requests -> Anthropic Messages requests (``POST {root}/messages``).

- ``system``/``developer`` messages (wherever they are) become the top-level ``system``: Anthropic
  takes system messages inside ``messages`` on some models only (and refuses them on the others),
  so one later in the conversation joins the top-level prompt too, its place not kept;
- turns keep their order; consecutive turns of one role are merged into one (``tool`` messages
  become ``tool_result`` blocks of a user turn, placed before any other block of it, as Anthropic
  requires);
- function tools become ``{name, description, input_schema}``; ``tool_choice`` auto/none stay,
  ``required`` becomes ``any``, a named function becomes ``{"type": "tool", "name": …}``;
  ``parallel_tool_calls: false`` becomes ``disable_parallel_tool_use``;
- ``max_tokens`` (or ``max_completion_tokens``) is required by Anthropic: ``DEFAULT_MAX_TOKENS``
  when the client gave none;
- ``response_format`` json_object/json_schema: see ``json_mode``;
- ``reasoning_effort`` becomes adaptive thinking with ``output_config.effort`` (``minimal`` as
  ``low``; ``none`` asks for no thinking), unless the tool choice forces a tool, which Anthropic
  refuses with thinking on; the thinking comes back as ``reasoning_content`` and
  ``reasoning_details`` (see ``response.py``), which a later turn's assistant message may carry back.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import InvalidRequest
from .content import assistant_blocks, text_of, tool_result_block, user_blocks

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; the gateway's cost hold assumes the same
JSON_TOOL = "json_answer"  # the forced tool whose input is the JSON answer (response_format)
_JSON_PROMPT = "Answer with a single JSON object only: no prose, no code fences."
_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}


def messages_body(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """The Anthropic request body for an OpenAI chat ``body`` (not mutated)."""
    system, turns = _turns(body.get("messages"))
    out: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(body)}
    _copy_sampling(body, out)
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(tools))
    mode = json_mode(body)
    if mode == "tool":
        tools = [_json_tool(body.get("response_format"))]
        choice = {"type": "tool", "name": JSON_TOOL}
    elif mode == "prompt":
        system.append(_json_instruction(body.get("response_format")))
    effort = thinking_effort(body)
    if effort is not None and (choice is None or choice["type"] in ("auto", "none")):
        out["thinking"] = {"type": "adaptive"}
        out["output_config"] = {"effort": effort}
    if system:
        out["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
    out["messages"] = turns
    if tools:
        out["tools"] = tools
        if choice is not None:  # Anthropic refuses a tool_choice without tools
            out["tool_choice"] = choice
    if stream:
        out["stream"] = True
    return out


def json_mode(body: dict[str, Any]) -> str | None:
    """How ``response_format`` json is asked of Anthropic, which has no such field.

    ``"tool"``: a forced tool whose ``input_schema`` is the wanted schema (``{"type": "object"}`` for
    json_object); the model must answer by calling it, so the answer is always well-formed JSON
    (and follows the schema), and its input comes back as the message's content. Chosen
    whenever it can be: a prompt only asks, a forced tool makes the API return JSON. ``"prompt"``:
    a system-prompt instruction, where a tool cannot do it (the client has tools of its own, which
    a forced tool would shut out, or its schema's root is not an object). None: no JSON asked for.
    """
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("json_object", "json_schema"):
        return None
    if body.get("tools") or _schema_of(fmt).get("type", "object") != "object" or thinking_effort(body):
        return "prompt"  # (a forced tool shuts out thinking too)
    return "tool"


def thinking_effort(body: dict[str, Any]) -> str | None:
    """Anthropic's ``output_config.effort`` for OpenAI's ``reasoning_effort`` (None: no thinking asked)."""
    return _EFFORTS.get(str(body.get("reasoning_effort")))


def _schema_of(fmt: Any) -> dict[str, Any]:
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {}


def _json_tool(fmt: Any) -> dict[str, Any]:
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    description = spec.get("description") if isinstance(spec, dict) else None
    return {"name": JSON_TOOL, "description": str(description or "Give the answer as JSON."),
            "input_schema": _schema_of(fmt) or {"type": "object"}}


def _json_instruction(fmt: Any) -> str:
    schema = _schema_of(fmt)
    if not schema:
        return _JSON_PROMPT
    return f"{_JSON_PROMPT} It must follow this JSON schema: {orjson.dumps(schema).decode()}"


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_MAX_TOKENS


def _copy_sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [str(s) for s in stop]
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("Anthropic providers answer one choice per request ('n' must be 1).", param="n")
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}


def _turns(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, Anthropic turns) from OpenAI ``messages``."""
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array.", param="messages")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"), where)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = user_blocks(message.get("content"), where)
        elif role == "assistant":
            blocks = assistant_blocks(message, where)
        elif role == "tool":
            role, blocks = "user", [tool_result_block(message, where)]
        else:
            raise InvalidRequest(f"{where}.role '{role}' cannot be sent to an Anthropic provider.", param=where)
        _append(turns, str(role), blocks)
    for turn in turns:  # tool results first in a user turn (Anthropic refuses them after other blocks)
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block.get("type") != "tool_result")
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not tools:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"tools[{j}]: only function tools with a name can be sent to an Anthropic "
                                 "provider.", param=f"tools[{j}]")
        entry: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            entry["description"] = str(function["description"])
        entry["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any, has_tools: bool) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = {"type": "auto"} if has_tools and parallel is False else None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        out = {"type": "tool", "name": str(choice["function"]["name"])}
    else:
        raise InvalidRequest("'tool_choice' must be auto, none, required or a named function.", param="tool_choice")
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out
