"""An Anthropic request's settings as OpenAI chat fields.

- ``temperature``, ``top_p`` are the same; ``stop_sequences`` become ``stop`` (OpenAI takes four);
- ``metadata.user_id`` becomes ``user`` when it fits OpenAI's 64 characters;
- client tools become function tools (``strict`` kept); ``tool_choice`` auto/any/none/tool becomes
  auto/required/none/a named function, ``disable_parallel_tool_use`` ``parallel_tool_calls: false``;
- ``output_config.effort`` (else ``thinking.budget_tokens``) becomes ``reasoning_effort``, which
  the Gemini adapter turns into its ``thinkingConfig``: ``low``/``medium``/``high`` as they are,
  ``xhigh`` and ``max`` as ``xhigh``; a budget under 4096 tokens ``low``, under 16384 ``medium``,
  else ``high``; adaptive thinking without an effort leaves the model its default;
- ``output_config.format`` (or ``output_format``) ``json_schema`` becomes ``response_format``.

Server tools (web search, code execution, bash, computer use, ...) run at Anthropic and have no
OpenAI counterpart; they, ``top_k``, ``context_management``, ``cache_control`` and every other
field without a counterpart are left out and named in ``Notes``.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from .conversation import Notes

# the fields read here and in parse.py; any other top-level field is named as left out
MAPPED = frozenset({"model", "max_tokens", "messages", "system", "stream", "temperature", "top_p", "stop_sequences",
                    "metadata", "tools", "tool_choice", "thinking", "output_config", "output_format"})
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}
_TOOL_KEYS = frozenset({"name", "description", "input_schema", "type", "strict"})
MAX_STOP = 4  # OpenAI's limit on stop sequences
MAX_USER = 64  # OpenAI refuses a longer ``user``


def chat_options(body: dict[str, Any], out: dict[str, Any], notes: Notes) -> None:
    """The OpenAI fields for ``body``'s settings, written into ``out``."""
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    _stop(body.get("stop_sequences"), out, notes)
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        user = metadata.get("user_id")
        if isinstance(user, str) and len(user) <= MAX_USER:
            out["user"] = user
        elif user is not None:
            notes.drop("metadata.user_id")
        if any(key != "user_id" for key in metadata):
            notes.drop("metadata")
    tools = _tools(body.get("tools"), notes)
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        chosen = _tool_choice(choice)
        if tools or chosen.get("tool_choice") == "none":
            out.update(chosen)
        else:
            notes.drop("tool_choice")  # the tools it chose among were all left out
    effort = reasoning_effort(body, notes)
    if effort is not None:
        out["reasoning_effort"] = effort
    response_format = _response_format(body, notes)
    if response_format is not None:
        out["response_format"] = response_format
    for key in body:
        if key not in MAPPED:
            notes.drop(key)


def _stop(stop: Any, out: dict[str, Any], notes: Notes) -> None:
    if stop is None:
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("'stop_sequences' must be an array of strings.", param="stop_sequences")
    if len(stop) > MAX_STOP:
        notes.drop(f"stop_sequences past the first {MAX_STOP}")
    if stop:
        out["stop"] = stop[:MAX_STOP]


def _tools(tools: Any, notes: Notes) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"tools[{i}] must be an object with a 'name'.", param=f"tools[{i}]")
        kind = tool.get("type")
        if kind not in (None, "custom") or not isinstance(tool.get("input_schema"), dict):
            notes.drop(f"server tools ({kind or tool['name']})")
            continue
        function: dict[str, Any] = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = tool["input_schema"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        for key in tool:
            if key not in _TOOL_KEYS:
                notes.drop(f"tools[].{key}")
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        out: dict[str, Any] = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    elif kind in ("auto", "any", "none"):
        out = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[kind]}
    else:
        raise InvalidRequest("'tool_choice' must be {type: auto|any|none} or {type: tool, name}.",
                             param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def reasoning_effort(body: dict[str, Any], notes: Notes) -> str | None:
    """OpenAI's ``reasoning_effort`` for the request's effort, or its thinking budget (see the module docstring)."""
    config = body.get("output_config")
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        for key in thinking:
            if key not in ("type", "budget_tokens"):
                notes.drop(f"thinking.{key}")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort is not None:
        mapped = _EFFORTS.get(str(effort))
        if mapped is None:
            notes.drop("output_config.effort")
        return mapped
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool):
            return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return None


def _response_format(body: dict[str, Any], notes: Notes) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(config, dict):
        for key in config:
            if key not in ("effort", "format"):
                notes.drop(f"output_config.{key}")
    fmt = fmt if fmt is not None else body.get("output_format")
    if fmt is None:
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt["schema"]}}
    notes.drop("output_config.format")
    return None


def wants_thinking(body: dict[str, Any]) -> bool:
    """The client asked to see thinking: the upstream's reasoning text comes back as thinking blocks."""
    thinking = body.get("thinking")
    return (isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
            and thinking.get("display") != "omitted")
