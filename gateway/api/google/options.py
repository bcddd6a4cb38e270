"""A generateContent request's settings in chat's words: ``generationConfig``, ``tools`` and
``toolConfig`` (see ``parse.py``). What chat has no equivalent for is named in ``Dropped``."""

from __future__ import annotations

from typing import Any

from ...core.dropped import Dropped
from ...core.tokens import THINKING_BUDGETS
from ...errors import InvalidRequest

_CONFIG = {"temperature": "temperature", "topP": "top_p", "maxOutputTokens": "max_tokens", "candidateCount": "n",
           "presencePenalty": "presence_penalty", "frequencyPenalty": "frequency_penalty", "seed": "seed"}
_READ = frozenset({*_CONFIG, "stopSequences", "responseJsonSchema", "responseSchema", "responseMimeType",
                   "thinkingConfig"})
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
# thinkingLevel → reasoning_effort (Gemini 3's levels have OpenAI's names)
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
# thinkingBudget (tokens) → reasoning_effort: the least effort whose budget covers it (the budgets
# the Gemini adapter asks for each effort)
_BUDGETS = tuple((THINKING_BUDGETS[effort], effort) for effort in ("low", "medium"))


def generation_config(config: Any, dropped: Dropped) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidRequest("'generationConfig' must be an object.", param="generationConfig")
    out = {target: config[name] for name, target in _CONFIG.items() if config.get(name) is not None}
    count = out.get("max_tokens")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise InvalidRequest("'generationConfig.maxOutputTokens' must be a positive integer.",
                             param="generationConfig.maxOutputTokens")
    stop = config.get("stopSequences")
    if isinstance(stop, list) and stop:
        out["stop"] = [str(s) for s in stop]
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if isinstance(schema, dict):
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "response", "schema": lower_types(schema)}}
    elif config.get("responseMimeType") == "application/json":
        out["response_format"] = {"type": "json_object"}
    effort = reasoning_effort(config.get("thinkingConfig"))
    if effort is not None:
        out["reasoning_effort"] = effort
    for name in config:
        if name not in _READ and config[name] is not None:
            dropped.add(f"generationConfig.{name}")
    return out


def reasoning_effort(thinking: Any) -> str | None:
    """``thinkingConfig`` as ``reasoning_effort``: its ``thinkingLevel``, else its ``thinkingBudget``
    (0: none; -1, dynamic: the model's default, no effort asked). None: nothing asked."""
    if not isinstance(thinking, dict):
        return None
    level = thinking.get("thinkingLevel")
    if isinstance(level, str) and level.upper() in _LEVELS:
        return _LEVELS[level.upper()]
    budget = thinking.get("thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        return None
    if budget == 0:
        return "none"
    return next((effort for limit, effort in _BUDGETS if budget <= limit), "high")


def tools(declared: Any, dropped: Dropped) -> list[dict[str, Any]]:
    """``functionDeclarations`` as chat function tools; Google's own tools are dropped."""
    if not isinstance(declared, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for i, tool in enumerate(declared):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools[{i}] must be an object.", param=f"tools[{i}]")
        for kind in tool:
            if kind != "functionDeclarations":
                dropped.add(f"tools.{kind}")
        for declaration in tool.get("functionDeclarations") or ():
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise InvalidRequest(f"tools[{i}].functionDeclarations needs objects with a 'name'.",
                                     param=f"tools[{i}]")
            function: dict[str, Any] = {"name": declaration["name"]}
            if isinstance(declaration.get("description"), str):
                function["description"] = declaration["description"]
            schema = declaration.get("parametersJsonSchema") or declaration.get("parameters")
            function["parameters"] = lower_types(schema) if isinstance(schema, dict) else {"type": "object",
                                                                                            "properties": {}}
            out.append({"type": "function", "function": function})
    return out


def tool_choice(config: dict[str, Any]) -> Any:
    mode = _MODES.get(str(config.get("mode") or "AUTO").upper(), "auto")
    allowed = config.get("allowedFunctionNames")
    if mode == "required" and isinstance(allowed, list) and len(allowed) == 1:
        return {"type": "function", "function": {"name": str(allowed[0])}}
    return mode


def lower_types(schema: Any) -> Any:
    """Google's schema (``"type": "OBJECT"``) as JSON Schema (``"object"``), recursively."""
    if isinstance(schema, dict):
        return {k: v.lower() if k == "type" and isinstance(v, str) else lower_types(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    return schema
