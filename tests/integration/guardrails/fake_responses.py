"""A fake upstream of OpenAI's Responses API (``POST /v1/responses``) whose answer the test scripts:
a message with ``text``, then (with ``arguments``) a function call; streamed as the real API
streams it (``response.created`` … the text in ``pieces`` deltas, each ``.done`` event with the
whole text, ``response.completed`` with the whole output), every event with its ``event:`` line."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from tests.fake_upstream import FakeUpstream, Recorded, split_text


class FakeResponses(FakeUpstream):
    text = "Hello from the fake Responses API"
    arguments: str | None = None  # a function call's arguments after the message
    pieces = 6

    def reset(self) -> None:
        super().reset()
        self.text, self.arguments, self.pieces = FakeResponses.text, None, 6

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        _, body = await self._json_body(request)
        with self._cond:
            self._records.append(Recorded(request.method, request.path,
                                          {k.lower(): v for k, v in request.headers.items()}, body,
                                          request.headers.get("authorization"), time.monotonic()))
        if request.path != "/v1/responses" or not isinstance(body, dict):
            return web.json_response({"error": {"message": "unknown", "type": "invalid_request_error"}}, status=404)
        if not body.get("stream"):
            return web.json_response(self._response(body, "completed", self._output()))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for n, event in enumerate(self._events(body)):
            payload = json.dumps({**event, "sequence_number": n})
            await resp.write(f"event: {event['type']}\ndata: {payload}\n\n".encode())
        await resp.write_eof()
        return resp

    def _output(self) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                                         "content": [{"type": "output_text", "text": self.text, "annotations": []}]}]
        if self.arguments is not None:
            output.append({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send",
                           "arguments": self.arguments, "status": "completed"})
        return output

    @staticmethod
    def _response(body: dict[str, Any], status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": "resp_1", "object": "response", "created_at": int(time.time()), "status": status,
                "model": body.get("model"), "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
                "tools": [], "error": None, "incomplete_details": None, "metadata": {},
                "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}} if status == "completed" else None}

    def _events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        output = self._output()
        message = output[0]
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": self._response(body, "in_progress", [])},
            {"type": "response.output_item.added", "output_index": 0, "item": {**message, "content": [],
                                                                               "status": "in_progress"}},
            {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0,
             "part": {"type": "output_text", "text": "", "annotations": []}}]
        events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                    "delta": piece} for piece in split_text(self.text, self.pieces)]
        events += [{"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                    "text": self.text},
                   {"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0, "content_index": 0,
                    "part": message["content"][0]},
                   {"type": "response.output_item.done", "output_index": 0, "item": message}]
        if self.arguments is not None:
            call = output[1]
            events.append({"type": "response.output_item.added", "output_index": 1, "item": {**call, "arguments": ""}})
            events += [{"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1,
                        "delta": piece} for piece in split_text(self.arguments, self.pieces)]
            events += [{"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 1,
                        "arguments": self.arguments},
                       {"type": "response.output_item.done", "output_index": 1, "item": call}]
        events.append({"type": "response.completed", "response": self._response(body, "completed", output)})
        return events
