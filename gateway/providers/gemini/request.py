"""OpenAI chat (and legacy completion) requests → Gemini ``GenerateContentRequest`` bodies.

Roles: ``assistant`` → ``model``; ``system``/``developer`` → ``systemInstruction``; tool results → ``user``
turns of ``functionResponse`` parts named after the call they answer. Consecutive turns of one role are
merged (Gemini wants the answers to parallel calls in one turn). Parts: ``content.py``; images in a tool
result follow its ``functionResponse`` in the same turn. A function call keeps the ``thoughtSignature`` its
id carries (``ids.py``); the first call of a model turn without one (history from another provider) gets
the placeholder Gemini documents for that, which Gemini 3 needs to accept the turn.
``reasoning_effort`` → ``thinkingConfig`` (a budget, with the thoughts asked back as ``reasoning_content``).
What Gemini has no room for (reasoning text from earlier turns, non-function tools, parts it cannot take) is
left out with one debug line (``core/dropped.py``); what is malformed is an ``InvalidRequest`` naming the field.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...core.dropped import Dropped
from ...core.tokens import THINKING_BUDGETS
from ...errors import InvalidRequest
from .content import Part, texts, user_parts
from .ids import signature_of
from .schema import gemini_schema, has_properties

_ROLES = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}
_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
# what Gemini's documentation gives to send as a function call's thought signature when the call did not
# come from Gemini (history from another model): Gemini 3 refuses a turn whose first call has none
NO_SIGNATURE = "skip_thought_signature_validator"
# OpenAI field → generationConfig field, copied when given
_SAME_MEANING = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
                 ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
                 ("seed", "seed"))

Content = dict[str, Any]


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Gemini request for an OpenAI chat body."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array.", param="messages")
    dropped = Dropped("chat->gemini")
    system, contents = _conversation(messages, dropped)
    out = _assemble(body, contents, system, dropped)
    dropped.log()
    return out


def completion_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Gemini request for a legacy ``/completions`` body: the prompt as one user turn."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("Gemini takes one text prompt per completion request.", param="prompt")
    return _assemble(body, [{"role": "user", "parts": [{"text": prompt}]}], [], Dropped("completion->gemini"))


def _assemble(body: dict[str, Any], contents: list[Content], system: list[Part], dropped: Dropped) -> dict[str, Any]:
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body, dropped)
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
    choice = _tool_config(body.get("tool_choice", body.get("function_call")))
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": choice}
    config = generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def _conversation(messages: list[Any], dropped: Dropped) -> tuple[list[Part], list[Content]]:
    system: list[Part] = []
    contents: list[Content] = []
    call_names: dict[str, str] = {}  # tool_call_id → function name, from the assistant turns so far
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in texts(message.get("content"), i, dropped) if t)
            continue
        if role not in _ROLES:
            raise InvalidRequest(f"messages[{i}].role '{str(role)[:40]}' is not one Gemini can take.",
                                 param=f"messages[{i}].role")
        if role == "assistant":
            parts = _assistant_parts(message, i, call_names, dropped)
        elif role in ("tool", "function"):
            parts = _function_response(message, i, call_names, dropped)
        else:
            parts = user_parts(message.get("content"), i, dropped)
        _append(contents, _ROLES[role], parts)
    return system, contents


def _append(contents: list[Content], role: str, parts: list[Part]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _assistant_parts(message: dict[str, Any], i: int, call_names: dict[str, str], dropped: Dropped) -> list[Part]:
    parts: list[Part] = [{"text": t} for t in texts(message.get("content"), i, dropped) if t]
    for field in ("reasoning_content", "reasoning", "reasoning_details"):
        if message.get(field):
            dropped.add(f"assistant.{field}")
    calls = message.get("tool_calls") or []
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls = [*calls, {"id": "", "type": "function", "function": legacy}]
    if not isinstance(calls, list):
        raise InvalidRequest(f"messages[{i}].tool_calls must be an array.", param=f"messages[{i}].tool_calls")
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{where} must name its function.", param=where)
        part: Part = {"functionCall": {"name": function["name"], "args": _arguments(function.get("arguments"), where)}}
        call_id = str(call.get("id") or "")
        signature = signature_of(call_id) or (NO_SIGNATURE if j == 0 else None)
        if signature:
            part["thoughtSignature"] = signature
        if call_id:
            call_names[call_id] = function["name"]
        parts.append(part)
    return parts


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{where}.function.arguments is not JSON.", param=where) from None
    if not isinstance(args, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object for Gemini.", param=where)
    return args


def _function_response(message: dict[str, Any], i: int, call_names: dict[str, str], dropped: Dropped) -> list[Part]:
    """A tool result as a ``functionResponse`` named after the call it answers (its images and
    files after it, as parts of the same turn)."""
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"messages[{i}] answers tool call '{str(call_id)[:80]}', which no earlier assistant "
                             "message made.", param=f"messages[{i}].tool_call_id")
    parts = user_parts(message.get("content"), i, dropped)
    text = "".join(str(p["text"]) for p in parts if "text" in p)
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    response = value if isinstance(value, dict) else {"result": value}
    return [{"functionResponse": {"name": name, "response": response}}, *(p for p in parts if "text" not in p)]


def _tools(body: dict[str, Any], dropped: Dropped) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    tools = body.get("tools")
    if isinstance(tools, list):
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function" \
                    or not isinstance(tool.get("function"), dict):
                dropped.add(f"tools[type={tool.get('type') if isinstance(tool, dict) else None}]")
                continue
            declarations.append(_declaration(tool["function"], f"tools[{j}].function"))
    functions = body.get("functions")
    if isinstance(functions, list):
        declarations.extend(_declaration(f, f"functions[{j}]") for j, f in enumerate(functions)
                            if isinstance(f, dict))
    return declarations


def _declaration(function: dict[str, Any], where: str) -> dict[str, Any]:
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required.", param=where)
    out: dict[str, Any] = {"name": name}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if isinstance(function.get("parameters"), dict):
        parameters = gemini_schema(function["parameters"])
        if has_properties(parameters):
            out["parameters"] = parameters
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    """``tool_choice`` (or legacy ``function_call``) → ``functionCallingConfig``."""
    if isinstance(choice, str):
        mode = _CHOICE_MODES.get(choice)
        if mode is None:
            raise InvalidRequest(f"tool_choice '{choice[:40]}' is not one of auto, none, required.",
                                 param="tool_choice")
        return {"mode": mode}
    if isinstance(choice, dict):
        function = choice.get("function") if "function" in choice else choice
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice must name a function.", param="tool_choice")
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    return None


def generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {theirs: body[ours] for ours, theirs in _SAME_MEANING if body.get(ours) is not None}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = [s for s in stop if isinstance(s, str)]
    budget = THINKING_BUDGETS.get(str(body.get("reasoning_effort")))
    if budget is not None:  # thoughts asked back (as reasoning_content) whenever thinking is on
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True} if budget else \
            {"thinkingBudget": 0}
    form = body.get("response_format")
    kind = form.get("type") if isinstance(form, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema" and isinstance(form, dict):
        spec = form.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            config["responseSchema"] = gemini_schema(spec["schema"])
    return config
