"""OpenAI chat (and legacy completion) requests → Gemini ``GenerateContentRequest`` bodies.

Roles: ``assistant`` → ``model``; ``system``/``developer`` → ``systemInstruction``; tool results → ``user``
turns of ``functionResponse`` parts named after the call they answer. Consecutive turns of one role are
merged (Gemini wants the answers to parallel calls in one turn). Images: ``data:`` URLs → ``inlineData``,
``https`` URLs → ``fileData``. Anything Gemini cannot take is an ``InvalidRequest`` naming the field.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from ...errors import InvalidRequest
from .ids import signature_of
from .schema import gemini_schema, has_properties

_ROLES = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}
_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg", "aac": "audio/aac"}
# OpenAI field → generationConfig field, copied when given
_SAME_MEANING = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
                 ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
                 ("seed", "seed"))
# reasoning_effort → thinkingConfig.thinkingBudget (tokens), the budgets Google's own OpenAI-compatible
# endpoint uses (Gemini 3 still takes a budget; "none" turns thinking off)
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}

Part = dict[str, Any]
Content = dict[str, Any]


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Gemini request for an OpenAI chat body."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array.", param="messages")
    system, contents = _conversation(messages)
    return _assemble(body, contents, system)


def completion_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Gemini request for a legacy ``/completions`` body: the prompt as one user turn."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("Gemini takes one text prompt per completion request.", param="prompt")
    return _assemble(body, [{"role": "user", "parts": [{"text": prompt}]}], [])


def _assemble(body: dict[str, Any], contents: list[Content], system: list[Part]) -> dict[str, Any]:
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body)
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
    choice = _tool_config(body.get("tool_choice", body.get("function_call")))
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": choice}
    config = generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def _conversation(messages: list[Any]) -> tuple[list[Part], list[Content]]:
    system: list[Part] = []
    contents: list[Content] = []
    call_names: dict[str, str] = {}  # tool_call_id → function name, from the assistant turns so far
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(message.get("content"), i) if t)
            continue
        if role not in _ROLES:
            raise InvalidRequest(f"messages[{i}].role '{str(role)[:40]}' is not one Gemini can take.",
                                 param=f"messages[{i}].role")
        if role == "assistant":
            parts = _assistant_parts(message, i, call_names)
        elif role in ("tool", "function"):
            parts = [_function_response(message, i, call_names)]
        else:
            parts = _user_parts(message.get("content"), i)
        _append(contents, _ROLES[role], parts)
    return system, contents


def _append(contents: list[Content], role: str, parts: list[Part]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _texts(content: Any, i: int) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise InvalidRequest(f"messages[{i}].content may hold only text parts here.",
                                     param=f"messages[{i}].content")
            texts.append(part["text"])
        return texts
    raise InvalidRequest(f"messages[{i}].content must be a string or an array of parts.",
                         param=f"messages[{i}].content")


def _user_parts(content: Any, i: int) -> list[Part]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or an array of parts.",
                             param=f"messages[{i}].content")
    parts: list[Part] = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            parts.append(_media_part(image.get("url") if isinstance(image, dict) else image, where))
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            audio = part["input_audio"]
            mime = _AUDIO.get(str(audio.get("format")), f"audio/{audio.get('format')}")
            parts.append({"inlineData": {"mimeType": mime, "data": str(audio.get("data") or "")}})
        elif kind == "file" and isinstance(part.get("file"), dict) and part["file"].get("file_data"):
            parts.append(_media_part(part["file"]["file_data"], where))
        else:
            raise InvalidRequest(f"{where}: a part of type '{str(kind)[:40]}' cannot be sent to Gemini.", param=where)
    return parts


def _media_part(url: Any, where: str) -> Part:
    """A ``data:`` URL → ``inlineData``; an ``https`` URL → ``fileData``; anything else is refused."""
    if isinstance(url, str) and url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime:
            raise InvalidRequest(f"{where}: a data: URL must look like data:<mime type>;base64,<data>.", param=where)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if isinstance(url, str) and url.startswith("https://"):
        file: dict[str, str] = {"fileUri": url}
        guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
        if guessed:
            file["mimeType"] = guessed
        return {"fileData": file}
    raise InvalidRequest(f"{where}: Gemini takes images as data: URLs (base64) or https URLs.", param=where)


def _assistant_parts(message: dict[str, Any], i: int, call_names: dict[str, str]) -> list[Part]:
    parts: list[Part] = [{"text": t} for t in _texts(message.get("content"), i) if t]
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
        signature = signature_of(call_id)
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


def _function_response(message: dict[str, Any], i: int, call_names: dict[str, str]) -> Part:
    """A tool result as a ``functionResponse`` named after the call it answers."""
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"messages[{i}] answers tool call '{str(call_id)[:80]}', which no earlier assistant "
                             "message made.", param=f"messages[{i}].tool_call_id")
    text = "".join(_texts(message.get("content"), i))
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    response = value if isinstance(value, dict) else {"result": value}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    tools = body.get("tools")
    if isinstance(tools, list):
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function" \
                    or not isinstance(tool.get("function"), dict):
                raise InvalidRequest(f"tools[{j}]: Gemini takes only function tools.", param=f"tools[{j}]")
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
    budget = _THINKING_BUDGETS.get(str(body.get("reasoning_effort")))
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget}
    form = body.get("response_format")
    kind = form.get("type") if isinstance(form, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema" and isinstance(form, dict):
        spec = form.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            config["responseSchema"] = gemini_schema(spec["schema"])
    return config
