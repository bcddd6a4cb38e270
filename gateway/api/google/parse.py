"""Google generateContent requests, checked and translated into an OpenAI chat body.

``systemInstruction`` becomes a system message; ``contents`` (roles ``user`` and ``model``)
become user and assistant messages: ``text`` parts, images as ``inlineData`` or ``fileData``,
``functionCall`` parts as ``tool_calls`` and ``functionResponse`` parts as ``tool`` messages
(matched to their call by ``id``, else by name in order). ``generationConfig`` maps to
``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``n``, penalties, ``seed`` and
``response_format``; ``tools.functionDeclarations`` and ``toolConfig`` to ``tools`` and
``tool_choice`` (schema types lower-cased). Google's own tools (search, code execution) are a
400 naming them.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import orjson

from ...core.call import CHAT, Call
from ...errors import InvalidRequest
from ..openai.parse import MAX_MODEL_CHARS

GEMINI = "gemini"  # the dialect's name: equal to the Gemini providers' protocol (pass-through)
GENERATE = "generate_content"  # the endpoint's name in the access log
_CONFIG = {"temperature": "temperature", "topP": "top_p", "maxOutputTokens": "max_tokens", "candidateCount": "n",
           "presencePenalty": "presence_penalty", "frequencyPenalty": "frequency_penalty", "seed": "seed"}
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}


def parse_generate(body: dict[str, Any], model: str, stream: bool) -> Call:
    """The checked body for ``model`` (from the path) as a ``Call``; 400 naming what is wrong."""
    model = model.removeprefix("models/")
    if not model.strip() or len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"The model in the path must be 1 to {MAX_MODEL_CHARS} characters.", param="model")
    chat: dict[str, Any] = {"model": model, "messages": Conversation().messages(body)}
    chat.update(_generation_config(body.get("generationConfig")))
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    config = body.get("toolConfig")
    if isinstance(config, dict) and isinstance(config.get("functionCallingConfig"), dict):
        chat["tool_choice"] = _tool_choice(config["functionCallingConfig"])
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return Call(CHAT, "/chat/completions", chat, model, stream=stream, wants_usage=True, dialect=GEMINI,
                native_body=body)


class Conversation:
    """Builds the OpenAI messages; remembers the ids of function calls so responses can name them."""

    def __init__(self) -> None:
        self.pending: defaultdict[str, deque[str]] = defaultdict(deque)
        self.calls = 0

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        system = body.get("systemInstruction")
        if system:
            out.append({"role": "system", "content": _system_text(system)})
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise InvalidRequest("'contents' must be a non-empty array.", param="contents")
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
                raise InvalidRequest(f"{where} must be an object with an array of 'parts'.", param=where)
            if content.get("role") == "model":
                out.append(self._model_turn(parts))
            else:
                out.extend(self._user_turn(parts, where))
        return out

    def _model_turn(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        texts = [str(p["text"]) for p in parts if "text" in p and not p.get("thought")]
        calls = []
        for part in parts:
            call = part.get("functionCall")
            if isinstance(call, dict):
                name = str(call.get("name") or "")
                self.calls += 1
                ident = str(call.get("id") or f"call_{self.calls}_{name}")
                self.pending[name].append(ident)
                calls.append({"id": ident, "type": "function",
                              "function": {"name": name, "arguments": orjson.dumps(call.get("args") or {}).decode()}})
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            message["tool_calls"] = calls
        return message

    def _user_turn(self, parts: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        for j, part in enumerate(parts):
            if isinstance(part.get("functionResponse"), dict):
                results.append(self._result(part["functionResponse"]))
            elif "text" in part:
                content.append({"type": "text", "text": str(part["text"])})
            else:
                content.append(_media(part, f"{where}.parts[{j}]"))
        if content:
            only_text = len(content) == 1 and content[0]["type"] == "text"
            results.append({"role": "user", "content": content[0]["text"] if only_text else content})
        return results

    def _result(self, response: dict[str, Any]) -> dict[str, Any]:
        name = str(response.get("name") or "")
        waiting = self.pending[name]
        ident = str(response.get("id") or (waiting.popleft() if waiting else f"call_{name}"))
        if response.get("id") and ident in waiting:
            waiting.remove(ident)
        return {"role": "tool", "tool_call_id": ident, "content": orjson.dumps(response.get("response")).decode()}


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    parts = system.get("parts") if isinstance(system, dict) else None
    if not isinstance(parts, list):
        raise InvalidRequest("'systemInstruction' must be a Content object with 'parts'.", param="systemInstruction")
    return "\n".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))


def _media(part: dict[str, Any], where: str) -> dict[str, Any]:
    inline, linked = part.get("inlineData"), part.get("fileData")
    if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith("image/"):
        url = f"data:{inline['mimeType']};base64,{inline.get('data') or ''}"
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(linked, dict) and str(linked.get("mimeType", "image/")).startswith("image/"):
        return {"type": "image_url", "image_url": {"url": str(linked.get("fileUri") or "")}}
    kinds = ", ".join(sorted(part)) or "empty"
    raise InvalidRequest(f"{where}: parts of kind '{kinds}' (other than text, images, function calls and "
                         "responses) cannot be sent to this model's provider.", param=where)


def _generation_config(config: Any) -> dict[str, Any]:
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
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    out = []
    for i, tool in enumerate(tools):
        declarations = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        if not isinstance(declarations, list):
            kinds = ", ".join(sorted(tool)) if isinstance(tool, dict) else "not an object"
            raise InvalidRequest(f"tools[{i}] ({kinds}): only functionDeclarations can be sent to this model's "
                                 "provider.", param=f"tools[{i}]")
        for declaration in declarations:
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


def _tool_choice(config: dict[str, Any]) -> Any:
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
