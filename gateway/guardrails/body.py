"""The text fields of OpenAI-shape bodies (the pipeline's lingua franca): found, and replaced.

``request_texts`` finds what a client sends a model (chat messages and tool call arguments,
completion prompts, embedding inputs, responses input and instructions; on the rest of the
surface, image prompts, moderation inputs, the text of speech, and the messages, instructions and
tool outputs of assistants and threads); ``answer_texts`` what a
model sends back (whole answers); ``chunk_texts`` the text deltas of one streamed chunk or
event, each with a ``key`` naming its stream (a choice's content, one tool call's arguments) so
the caller keeps one ``StreamScanner`` per key. ``BodyTexts.replaced`` returns a copy of the body
with new texts, copying only the containers on the way to a changed string: the original body is
never mutated (``Call.body`` is shared). ``json_texts`` finds every string of any JSON value (an MCP
tool call's arguments).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.call import (
    ASSISTANTS,
    AUDIO,
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    IMAGES,
    MODERATIONS,
    PASSTHROUGH,
    RESPONSES,
    THREADS,
)

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class BodyTexts:
    """The strings of a body and where each one sits."""

    paths: tuple[Path, ...]
    texts: tuple[str, ...]
    keys: tuple[Hashable, ...] = ()  # chunk_texts only: the stream each text belongs to

    def replaced(self, body: Mapping[str, Any], texts: Sequence[str]) -> dict[str, Any]:
        """A copy of ``body`` with ``texts[i]`` at ``paths[i]`` (``body`` itself untouched)."""
        out: dict[str, Any] = dict(body)
        copied: set[Path] = {()}
        for path, new, old in zip(self.paths, texts, self.texts, strict=True):
            if new == old:
                continue
            node: Any = out
            for depth, step in enumerate(path[:-1]):
                here = path[:depth + 1]
                child = node[step]
                if here not in copied:
                    child = dict(child) if isinstance(child, dict) else list(child)
                    node[step] = child
                    copied.add(here)
                node = child
            node[path[-1]] = new
        return out


def _collect(found: Iterator[tuple[Path, str]]) -> BodyTexts:
    pairs = list(found)
    return BodyTexts(tuple(p for p, _ in pairs), tuple(t for _, t in pairs))


def _content(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """A message content: a string, or a list of parts whose text is in ``text``."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, part in enumerate(value):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield path + (i, "text"), part["text"]
            elif isinstance(part, str):
                yield path + (i,), part


def _tool_calls(message: Mapping[str, Any], path: Path) -> Iterator[tuple[Path, str]]:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield path + ("tool_calls", j, "function", "arguments"), function["arguments"]
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        yield path + ("function_call", "arguments"), legacy["arguments"]


def _chat_request(body: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        if isinstance(message, dict):
            yield from _content(message.get("content"), ("messages", i, "content"))
            yield from _tool_calls(message, ("messages", i))


def _strings(body: Mapping[str, Any], field: str) -> Iterator[tuple[Path, str]]:
    """A field that is a string or a list of strings (token arrays are skipped)."""
    value = body.get(field)
    if isinstance(value, str):
        yield (field,), value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield (field, i), item


def _responses_items(items: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(items, str):
        yield path, items
        return
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        here = path + (i,)
        yield from _content(item.get("content"), here + ("content",))
        for field in ("arguments", "output"):  # function_call arguments, function_call_output output
            if isinstance(item.get(field), str):
                yield here + (field,), item[field]


def _responses_request(body: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    if isinstance(body.get("instructions"), str):
        yield ("instructions",), body["instructions"]
    yield from _responses_items(body.get("input"), ("input",))


def _messages(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    for i, message in enumerate(value if isinstance(value, list) else ()):
        if isinstance(message, dict):
            yield from _content(message.get("content"), path + (i, "content"))


def _stateful_request(body: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """Assistants and threads: instructions, a message's content, a thread's messages, tool outputs."""
    for field in ("instructions", "additional_instructions"):
        if isinstance(body.get(field), str):
            yield (field,), body[field]
    yield from _content(body.get("content"), ("content",))
    yield from _messages(body.get("messages"), ("messages",))
    yield from _messages(body.get("additional_messages"), ("additional_messages",))
    thread = body.get("thread")
    if isinstance(thread, dict):
        yield from _messages(thread.get("messages"), ("thread", "messages"))
    outputs = body.get("tool_outputs")
    for i, output in enumerate(outputs if isinstance(outputs, list) else ()):
        if isinstance(output, dict) and isinstance(output.get("output"), str):
            yield ("tool_outputs", i, "output"), output["output"]


_REQUEST_FIELDS = {COMPLETIONS: "prompt", EMBEDDINGS: "input", IMAGES: "prompt", AUDIO: "input"}


def request_texts(operation: str, body: Mapping[str, Any]) -> BodyTexts:
    """The texts of a request ``body`` for ``operation`` (``core.call``: chat, completions, ...)."""
    if operation in (CHAT, PASSTHROUGH):  # a pass-through's body is a chat request (core.call)
        return _collect(_chat_request(body))
    field = _REQUEST_FIELDS.get(operation)
    if field is not None:  # a string or a list of strings (token arrays are not text)
        return _collect(_strings(body, field))
    if operation == RESPONSES:
        return _collect(_responses_request(body))
    if operation == MODERATIONS:  # a string, strings, or parts ({"type": "text", "text": ...} among images)
        return _collect(_content(body.get("input"), ("input",)))
    if operation in (THREADS, ASSISTANTS):
        return _collect(_stateful_request(body))
    return BodyTexts((), ())


MAX_DEPTH = 32  # nesting followed into a JSON value (deeper strings are not reached)


def _json_strings(value: Any, path: Path, depth: int) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif depth < MAX_DEPTH and isinstance(value, dict):
        for key, child in value.items():
            yield from _json_strings(child, path + (key,), depth + 1)
    elif depth < MAX_DEPTH and isinstance(value, list):
        for i, child in enumerate(value):
            yield from _json_strings(child, path + (i,), depth + 1)


def json_texts(value: Mapping[str, Any], under: Path = ()) -> BodyTexts:
    """Every string value (not the keys) of a JSON object, at most ``MAX_DEPTH`` deep; ``under``:
    the object's own path, when it sits inside the body ``replaced`` is given."""
    return _collect(_json_strings(value, under, 0))


def _chat_answer(answer: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    for i, choice in enumerate(_choices(answer)):
        message = choice.get("message")
        if isinstance(message, dict):
            yield from _content(message.get("content"), ("choices", i, "message", "content"))
            yield from _tool_calls(message, ("choices", i, "message"))


def _choices(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices")
    return [c if isinstance(c, dict) else {} for c in choices] if isinstance(choices, list) else []


def answer_texts(operation: str, answer: Mapping[str, Any]) -> BodyTexts:
    """The texts of a whole (non-streamed) answer."""
    if operation == CHAT:
        return _collect(_chat_answer(answer))
    if operation == COMPLETIONS:
        return _collect(((("choices", i, "text"), c["text"]) for i, c in enumerate(_choices(answer))
                         if isinstance(c.get("text"), str)))
    if operation == RESPONSES:
        return _collect(_responses_items(answer.get("output"), ("output",)))
    return BodyTexts((), ())


def _chat_chunk(chunk: Mapping[str, Any]) -> Iterator[tuple[Hashable, Path, str]]:
    for i, choice in enumerate(_choices(chunk)):
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        index = choice.get("index", i)
        if isinstance(delta.get("content"), str):
            yield ("content", index), ("choices", i, "delta", "content"), delta["content"]
        calls = delta.get("tool_calls")
        for j, call in enumerate(calls if isinstance(calls, list) else ()):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                key = ("tool", index, call.get("index", j))
                yield key, ("choices", i, "delta", "tool_calls", j, "function", "arguments"), function["arguments"]


def _responses_event(event: Mapping[str, Any]) -> Iterator[tuple[Hashable, Path, str]]:
    kind = event.get("type")
    if kind in ("response.output_text.delta", "response.function_call_arguments.delta") and isinstance(
            event.get("delta"), str):
        yield (kind, event.get("output_index"), event.get("content_index")), ("delta",), event["delta"]


def chunk_texts(operation: str, chunk: Mapping[str, Any]) -> BodyTexts:
    """The text deltas of one streamed chunk (chat, completions) or event (responses)."""
    if operation == CHAT:
        found = list(_chat_chunk(chunk))
    elif operation == COMPLETIONS:
        found = [(("text", c.get("index", i)), ("choices", i, "text"), c["text"])
                 for i, c in enumerate(_choices(chunk)) if isinstance(c.get("text"), str)]
    elif operation == RESPONSES:
        found = list(_responses_event(chunk))
    else:
        found = []
    return BodyTexts(tuple(p for _, p, _ in found), tuple(t for _, _, t in found), tuple(k for k, _, _ in found))
