"""The parts of OpenAI chat messages as Gemini ``Part`` objects.

Text parts stay text; images (``image_url``) and files (``file`` with ``file_data``) as ``data:``
URLs become ``inlineData``, ``https`` URLs ``fileData``; audio (``input_audio``) ``inlineData``.
A part Gemini has no room for (a ``file`` known only by an OpenAI file id, a refusal, a kind this
version does not know) is left out and named in ``Dropped``; a malformed one (a ``data:`` URL that
is not base64, an ``http`` image) is an ``InvalidRequest`` naming the field.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from ...core.dropped import Dropped
from ...errors import InvalidRequest

_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg", "aac": "audio/aac"}

Part = dict[str, Any]


def texts(content: Any, i: int, dropped: Dropped) -> list[str]:
    """The text of a message's ``content`` (a string or parts); its other parts are left out."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or an array of parts.",
                             param=f"messages[{i}].content")
    out = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            out.append(part["text"])
        else:
            dropped.add(f"content[type={part.get('type') if isinstance(part, dict) else None}]")
    return out


def user_parts(content: Any, i: int, dropped: Dropped) -> list[Part]:
    """A user message's (or a tool result's) content as parts: text, images, files, audio."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or an array of parts.",
                             param=f"messages[{i}].content")
    parts: list[Part] = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict):
            dropped.add("content[not an object]")
        elif kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            parts.append(media_part(image.get("url") if isinstance(image, dict) else image, where))
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            audio = part["input_audio"]
            mime = _AUDIO.get(str(audio.get("format")), f"audio/{audio.get('format')}")
            parts.append({"inlineData": {"mimeType": mime, "data": str(audio.get("data") or "")}})
        elif kind == "file" and isinstance(part.get("file"), dict) and part["file"].get("file_data"):
            parts.append(media_part(part["file"]["file_data"], where))
        else:
            dropped.add(f"content[type={str(kind)[:40]}]")
    return parts


def media_part(url: Any, where: str) -> Part:
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
