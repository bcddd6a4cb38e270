"""Responses tools as chat function tools, and the chat function names back as Responses tools.

- ``function`` tools stay functions (``strict`` kept);
- ``custom`` tools (free-form input, optionally a grammar) become a function taking one string
  argument ``input``; the grammar goes into the description. A call comes back as a
  ``custom_tool_call`` whose ``input`` is that string;
- ``namespace`` tools (a group of function and custom tools) are flattened: each inner tool is a
  function named ``<namespace>__<name>`` (cut to 64 characters with a hash when longer); a call
  comes back with its own ``name`` and the ``namespace``;
- tools that run on OpenAI's servers (``web_search``, ``file_search``, ``code_interpreter``, …) and
  ``tool_search`` have no chat equivalent and are dropped (``Dropped``).

``ToolMap`` holds both directions for one request: the chat tools, and what each chat function
name stands for (rebuilt from the request when the answer is translated).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ...core.dropped import Dropped

CUSTOM_ARGUMENT = "input"  # the one argument of the function a custom tool becomes
MAX_NAME = 64  # chat function names (OpenAI, Anthropic, Gemini alike) are at most 64 characters


@dataclass(frozen=True, slots=True)
class ToolName:
    """What a chat function name stands for in the Responses request."""

    kind: str  # "function" | "custom"
    name: str
    namespace: str | None = None


def flat_name(namespace: str, name: str) -> str:
    """``<namespace>__<name>``, within ``MAX_NAME`` characters (a hash keeps long ones apart)."""
    joined = f"{namespace}__{name}"
    if len(joined) <= MAX_NAME:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
    return joined[:MAX_NAME - 9] + "_" + digest


class ToolMap:
    """The chat tools for a Responses request's ``tools``, and their names back (see the module doc)."""

    def __init__(self, tools: object, dropped: Dropped | None = None):
        self.chat_tools: list[dict[str, Any]] = []
        self.back: dict[str, ToolName] = {}
        self._dropped = dropped or Dropped("responses->chat")
        for tool in tools if isinstance(tools, list) else ():
            self._add(tool, None)

    def _add(self, tool: object, namespace: str | None) -> None:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) and kind != "namespace":
            self._dropped.add(f"tools[type={kind}]")
            return
        if kind == "namespace" and namespace is None and isinstance(tool.get("name"), str):
            for inner in tool.get("tools") or ():
                self._add(inner, tool["name"])
        elif kind in ("function", "custom"):
            name = tool["name"]
            chat_name = flat_name(namespace, name) if namespace else name
            self.back[chat_name] = ToolName(kind, name, namespace)
            self.chat_tools.append(_function(tool, chat_name) if kind == "function" else _custom(tool, chat_name))
        else:
            self._dropped.add(f"tools[type={kind}]")

    def chat_name(self, name: object, namespace: object = None) -> str:
        """The chat function name of a Responses tool (as a call in the history names it)."""
        text = str(name or "")
        return flat_name(namespace, text) if isinstance(namespace, str) and namespace else text

    def tool_of(self, chat_name: str) -> ToolName:
        """What a chat call's function name stands for (a function of that name when unknown)."""
        return self.back.get(chat_name) or ToolName("function", chat_name)

    def tool_choice(self, choice: object) -> object:
        """``tool_choice`` in chat's words; what chat cannot say becomes ``auto``/``required``."""
        if choice is None or isinstance(choice, str):
            return choice
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind in ("function", "custom") and isinstance(choice, dict) and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": self.chat_name(choice["name"], choice.get("namespace"))}}
        self._dropped.add(f"tool_choice[type={kind}]")
        if kind == "allowed_tools" and isinstance(choice, dict) and choice.get("mode") == "required":
            return "required"
        return "auto"


def _function(tool: dict[str, Any], chat_name: str) -> dict[str, Any]:
    function: dict[str, Any] = {"name": chat_name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    function["parameters"] = tool["parameters"] if isinstance(tool.get("parameters"), dict) else {
        "type": "object", "properties": {}}
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _custom(tool: dict[str, Any], chat_name: str) -> dict[str, Any]:
    description = str(tool.get("description") or "")
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        description += (f"\n\nPut the whole input in '{CUSTOM_ARGUMENT}'. It must follow this "
                        f"{fmt.get('syntax') or 'lark'} grammar:\n{fmt['definition']}")
    else:
        description += f"\n\nPut the whole free-form input in '{CUSTOM_ARGUMENT}'."
    parameters = {"type": "object", "properties": {CUSTOM_ARGUMENT: {"type": "string"}},
                  "required": [CUSTOM_ARGUMENT], "additionalProperties": False}
    return {"type": "function", "function": {"name": chat_name, "description": description.strip(),
                                             "parameters": parameters}}
