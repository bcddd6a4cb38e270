"""What the tool loop did (``pipeline/tool_steps.py``), in the Responses API's words: ``mcp_list_tools``
and ``mcp_call`` output items and their stream events; and the same items in a chat answer.

Responses, whole: the items in ``output`` in the order they happened, before the last round's own
items; a round's text before its calls is a ``message`` item of its own. Streamed, per server
listed: ``output_item.added`` → ``mcp_list_tools.in_progress`` → ``.completed`` (``.failed`` with
its ``error``) → ``output_item.done``; per call: ``output_item.added`` (status ``in_progress``) →
``mcp_call_arguments.delta`` → ``.done`` → ``mcp_call.in_progress`` → ``mcp_call.completed`` or
``.failed`` → ``output_item.done`` (with ``output`` or ``error``). A call the loop did not run
(``max_tool_rounds``) is added and done at once, status ``incomplete``.

Chat completions have no place for them: the answer carries the same items in a field of its own,
``mcp_output`` (whole: the list; streamed: a chunk with no choices and ``mcp_output`` holding one
item, as each is done), and the text of every round, joined by a blank line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from ...pipeline.tool_loop import LoopAnswer, LoopStream
from ...pipeline.tool_steps import COMPLETED, CallDone, CallStarted, Listed, Said, Step
from .responses_render import chat_to_response, message_item, reasoning_item
from .responses_stream import ChatToResponseEvents

ROUND_SEPARATOR = "\n\n"  # between the texts of two rounds in a chat answer


def list_item(step: Listed, item_id: str) -> dict[str, Any]:
    tools = [{"name": t["name"], "input_schema": t.get("inputSchema") or {}, "description": t.get("description"),
              "annotations": t.get("annotations")} for t in step.tools]
    return {"id": item_id, "type": "mcp_list_tools", "server_label": step.label, "tools": tools, "error": step.error}


def call_item(step: CallStarted | CallDone, item_id: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "mcp_call", "server_label": step.function.label,
                            "name": step.function.tool, "arguments": step.arguments, "output": None, "error": None,
                            "status": "in_progress"}
    if isinstance(step, CallDone):
        item.update(status=step.status, error=step.error, output=step.text if step.status == COMPLETED else None)
    return item


def step_item(step: Step, key: str) -> dict[str, Any] | None:
    """The item of a list or a call done (ids ``mcpl_<key>``, ``mcp_<key>``); None for other steps."""
    if isinstance(step, Listed):
        return list_item(step, f"mcpl_{key}")
    if isinstance(step, CallDone):
        return call_item(step, f"mcp_{key}")
    return None


def loop_response(result: LoopAnswer, request: dict[str, Any]) -> dict[str, Any]:
    """A whole loop's answer as a Response object for ``request``."""
    response = chat_to_response(result.answer.data, result.answer.usage, request)
    suffix = response["id"][5:]
    before: list[dict[str, Any]] = []
    for n, step in enumerate(result.steps):
        if isinstance(step, Said):
            if step.reasoning:
                before.append(reasoning_item(f"rs_{suffix}_{n}", step.reasoning))
            if step.text:
                before.append(message_item(f"msg_{suffix}_{n}", step.text))
        elif (item := step_item(step, f"{suffix}_{n}")) is not None:
            before.append(item)
    response["output"] = before + response["output"]
    return response


def loop_chat(result: LoopAnswer) -> dict[str, Any]:
    """A whole loop's answer as a chat completion with ``mcp_output``."""
    data = dict(result.answer.data)
    suffix = str(data.get("id") or time.time_ns())
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = dict(choices[0].get("message") or {})
        texts = [s.text for s in result.steps if isinstance(s, Said) and s.text]
        if isinstance(message.get("content"), str) and message["content"]:
            texts.append(message["content"])
        if texts:
            message["content"] = ROUND_SEPARATOR.join(texts)
        data["choices"] = [{**choices[0], "message": message}, *choices[1:]]
    found = [step_item(step, f"{suffix}_{n}") for n, step in enumerate(result.steps)]
    data["mcp_output"] = [item for item in found if item is not None]
    return data


class ResponseSteps:
    """The steps of a streamed loop as Responses events, in the stream ``translator`` writes."""

    def __init__(self, translator: ChatToResponseEvents):
        self.tr = translator
        self.open: tuple[int, str] | None = None  # the call running: its output index and item id

    def events(self, step: Step) -> list[bytes]:
        tr, suffix = self.tr, self.tr.response_id[5:]
        if isinstance(step, Said):
            return []  # its text went out as it came
        if isinstance(step, Listed):
            index, out = tr.place(f"mcpl_{suffix}_{len(tr.items)}")
            item = list_item(step, tr.items[index].item_id)
            where = {"item_id": item["id"], "output_index": index}
            ended = "response.mcp_list_tools.failed" if step.error else "response.mcp_list_tools.completed"
            out += [tr.event("response.output_item.added", output_index=index, item={**item, "tools": [],
                                                                                     "error": None}),
                    tr.event("response.mcp_list_tools.in_progress", **where), tr.event(ended, **where),
                    tr.event("response.output_item.done", output_index=index, item=item)]
            tr.set_item(index, item)
            return out
        if isinstance(step, CallStarted):
            return self._started(step)
        return self._done(step)

    def _started(self, step: CallStarted | CallDone) -> list[bytes]:
        tr = self.tr
        index, out = tr.place(f"mcp_{tr.response_id[5:]}_{len(tr.items)}")
        item = call_item(step, tr.items[index].item_id)
        where = {"item_id": item["id"], "output_index": index}
        shown = {**item, "arguments": "", "output": None, "error": None, "status": "in_progress"}
        out += [tr.event("response.output_item.added", output_index=index, item=shown),
                tr.event("response.mcp_call_arguments.delta", **where, delta=step.arguments),
                tr.event("response.mcp_call_arguments.done", **where, arguments=step.arguments)]
        if isinstance(step, CallStarted):
            out.append(tr.event("response.mcp_call.in_progress", **where))
            self.open = (index, item["id"])
        tr.set_item(index, item)
        return out

    def _done(self, step: CallDone) -> list[bytes]:
        tr = self.tr
        if self.open is None:  # a call the loop did not run
            out = self._started(step)
            index = len(tr.items) - 1
            item_id = tr.items[index].item_id
        else:
            (index, item_id), self.open, out = self.open, None, []
            kind = "response.mcp_call.completed" if step.status == COMPLETED else "response.mcp_call.failed"
            out.append(tr.event(kind, item_id=item_id, output_index=index))
        item = call_item(step, item_id)
        tr.set_item(index, item)
        return [*out, tr.event("response.output_item.done", output_index=index, item=item)]


async def response_events(source: LoopStream, request: dict[str, Any],
                          chat_body: dict[str, Any]) -> AsyncGenerator[bytes, None]:
    """A streamed loop as ``response.*`` events (``responses_stream.py`` for the text of its rounds)."""
    translator = ChatToResponseEvents(request, chat_body)
    steps = ResponseSteps(translator)
    pending = translator.start()  # sent with the first events, in one send
    try:
        async for item in source:
            out = [*pending, *(translator.feed_item(item) if isinstance(item, bytes) else steps.events(item))]
            pending = []
            if out:
                yield b"".join(out)
        if pending:
            yield b"".join(pending)
        if not translator.ended:
            yield b"".join(translator.failed({"message": "The provider's stream ended before it was complete."}))
    finally:
        await source.close()


async def chat_events(source: LoopStream, model: str) -> AsyncGenerator[bytes, None]:
    """A streamed loop as chat chunks: the rounds' as they came, an ``mcp_output`` chunk per item done."""
    key = f"{time.time_ns():x}"
    base = {"id": f"chatcmpl-{key}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": []}
    try:
        n = 0
        async for item in source:
            if isinstance(item, bytes):
                yield item
                continue
            found = step_item(item, f"{key}_{n}")
            n += 1
            if found is not None:
                yield b"data: " + orjson.dumps({**base, "mcp_output": [found]}) + b"\n\n"
    finally:
        await source.close()
