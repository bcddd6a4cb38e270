"""Google generateContent requests, checked and translated into an OpenAI chat body.

``systemInstruction`` becomes a system message; ``contents`` (roles ``user`` and ``model``)
become user and assistant messages: ``text`` parts, images and documents as ``inlineData`` (a
``data:`` URL) or ``fileData`` (an image's URL), audio as ``input_audio``; ``functionCall`` parts
as ``tool_calls`` and ``functionResponse`` parts as ``tool`` messages (matched to their call by
``id``, else by name in order). ``generationConfig`` maps to ``temperature``, ``top_p``,
``max_tokens``, ``stop``, ``n``, penalties, ``seed``, ``response_format`` (``responseJsonSchema``
or ``responseSchema``, type names lower-cased) and ``reasoning_effort`` (``thinkingConfig``);
``tools.functionDeclarations`` (``parametersJsonSchema`` or ``parameters``) and ``toolConfig`` to
``tools`` and ``tool_choice``.

What chat has no room for is left out and named in ``Call.dropped`` (never a 400): thoughts and
their ``thoughtSignature`` (Gemini's own, including Gemini CLI's placeholder
``skip_thought_signature_validator``, which only a Gemini provider may see), Google's own tools
(search, code execution, URL context), ``topK``, ``safetySettings``, ``cachedContent``, … A
Gemini provider gets the client's body untouched (pass-through), so nothing is lost there.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import orjson

from ...core.call import CHAT, Call
from ...core.dropped import Dropped
from ...errors import InvalidRequest
from ..openai.parse import MAX_MODEL_CHARS
from .options import generation_config, tool_choice, tools

GEMINI = "gemini"  # the dialect's name: equal to the Gemini providers' protocol (pass-through)
GENERATE = "generate_content"  # the endpoint's name in the access log
_KNOWN = frozenset({"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "model"})
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
_SKIPPED_PARTS = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"})


def parse_generate(body: dict[str, Any], model: str, stream: bool,
                   headers: tuple[tuple[str, str], ...] = ()) -> Call:
    """The checked body for ``model`` (from the path) as a ``Call``; 400 naming what is wrong.
    ``headers``: the client's headers a Gemini provider gets with the body (``x-goog-api-client``)."""
    model = model.removeprefix("models/")
    if not model.strip() or len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"The model in the path must be 1 to {MAX_MODEL_CHARS} characters.", param="model")
    dropped = Dropped("gemini->chat")
    chat: dict[str, Any] = {"model": model, "messages": Conversation(dropped).messages(body)}
    chat.update(generation_config(body.get("generationConfig"), dropped))
    if body.get("tools"):
        declared = tools(body["tools"], dropped)
        if declared:
            chat["tools"] = declared
    config = body.get("toolConfig")
    if chat.get("tools") and isinstance(config, dict) and isinstance(config.get("functionCallingConfig"), dict):
        chat["tool_choice"] = tool_choice(config["functionCallingConfig"])
    for name in body:
        if name not in _KNOWN:
            dropped.add(name)
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return Call(CHAT, "/chat/completions", chat, model, stream=stream, wants_usage=True, dialect=GEMINI,
                native_body=body, headers=headers, dropped=tuple(dropped.names), translated=True)


class Conversation:
    """Builds the OpenAI messages; remembers the ids of function calls so responses can name them."""

    def __init__(self, dropped: Dropped) -> None:
        self.dropped = dropped
        self.pending: defaultdict[str, deque[str]] = defaultdict(deque)
        self.calls = 0

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        system = body.get("systemInstruction")
        if system:
            text = _system_text(system)
            if text:
                out.append({"role": "system", "content": text})
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise InvalidRequest("'contents' must be a non-empty array.", param="contents")
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
                raise InvalidRequest(f"{where} must be an object with an array of 'parts'.", param=where)
            if content.get("role") == "model":
                out.extend(self._model_turn(parts))
            else:
                out.extend(self._user_turn(parts))
        return out

    def _model_turn(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        texts: list[str] = []
        calls = []
        for part in parts:
            call = part.get("functionCall")
            if part.get("thought") is True:
                self.dropped.add("parts.thought")
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(call, dict):
                name = str(call.get("name") or "")
                self.calls += 1
                ident = str(call.get("id") or f"call_{self.calls}_{name}")
                self.pending[name].append(ident)
                calls.append({"id": ident, "type": "function",
                              "function": {"name": name, "arguments": orjson.dumps(call.get("args") or {}).decode()}})
            else:
                self._drop(part)
            if "thoughtSignature" in part:
                self.dropped.add("parts.thoughtSignature")
        if not texts and not calls:
            return []  # a turn of thoughts only: nothing a chat model could read
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            message["tool_calls"] = calls
        return [message]

    def _user_turn(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        content: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part.get("functionResponse"), dict):
                results.append(self._result(part["functionResponse"]))
            elif isinstance(part.get("text"), str) and part.get("thought") is not True:
                content.append({"type": "text", "text": part["text"]})
            else:
                media = self._media(part)
                if media is not None:
                    content.append(media)
        if content:
            only_text = all(c["type"] == "text" for c in content)
            results.append({"role": "user", "content": "".join(c["text"] for c in content) if only_text and
                            len(content) == 1 else content})
        return results

    def _result(self, response: dict[str, Any]) -> dict[str, Any]:
        name = str(response.get("name") or "")
        waiting = self.pending[name]
        ident = str(response.get("id") or (waiting.popleft() if waiting else f"call_{name}"))
        if response.get("id") and ident in waiting:
            waiting.remove(ident)
        if response.get("parts"):
            self.dropped.add("functionResponse.parts")
        return {"role": "tool", "tool_call_id": ident, "content": orjson.dumps(response.get("response")).decode()}

    def _media(self, part: dict[str, Any]) -> dict[str, Any] | None:
        inline, linked = part.get("inlineData"), part.get("fileData")
        mime = str((inline if isinstance(inline, dict) else linked if isinstance(linked, dict) else {})
                   .get("mimeType") or "")
        if isinstance(inline, dict):
            data = str(inline.get("data") or "")
            if mime.startswith("image/"):
                return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
            if mime in _AUDIO:
                return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO[mime]}}
            if mime:
                file: dict[str, Any] = {"file_data": f"data:{mime};base64,{data}"}
                if isinstance(inline.get("displayName"), str):
                    file["filename"] = inline["displayName"]
                return {"type": "file", "file": file}
        if isinstance(linked, dict) and (mime.startswith("image/") or not mime) and linked.get("fileUri"):
            return {"type": "image_url", "image_url": {"url": str(linked["fileUri"])}}
        self._drop(part)
        return None

    def _drop(self, part: dict[str, Any]) -> None:
        kinds = [k for k in part if k not in _SKIPPED_PARTS] or list(part)
        self.dropped.add("parts." + (kinds[0] if kinds else "empty"))


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    parts = system.get("parts") if isinstance(system, dict) else None
    if not isinstance(parts, list):
        raise InvalidRequest("'systemInstruction' must be a Content object with 'parts'.", param="systemInstruction")
    return "\n".join(str(p.get("text") or "") for p in parts if isinstance(p, dict) and p.get("text"))
