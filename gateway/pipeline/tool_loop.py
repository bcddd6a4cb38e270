"""The tool loop: a model offered MCP tools, each call it makes run by the gateway, the results
given back, the model called again, until it answers.

    offer = await make_offer(runtime.tools, snapshot, client, selections, taken)   # tool_offer.py
    loop = ToolLoop(pipeline, exchange, offer, call, route, guards)
    admitted = await loop.admit()              # the first round: 400/429 here, as for any request
    result = await loop.whole(admitted)        # LoopAnswer | None (the client left)
    result = await loop.stream(admitted)       # LoopStream: chat events (bytes) and steps

Each round is a request of its own to the pipeline: admitted under the client's limits and budget
(a round refused ends the loop with that error), guarded, dispatched to whichever provider serves
the model, settled and recorded (one ledger row per round, all with the request's id). The calls a
round makes to the offered functions run one after another through the client's tool service
(``tool_steps.run_call``: policy, limits, budget, guards, one ledger row each). A round that calls
a function the client defined ends the loop: the answer hands that call to the client (with the
MCP calls of the same round run first). ``routing.max_tool_rounds`` rounds of tool calls at most:
a model that asks for more gets its calls reported as not run and the answer finishes with
``max_tool_rounds``. Forcing ``tool_choice`` applies to the first round only (then ``auto``).

The answer is the last round's, without the MCP calls, with the usage of every round added up.
Streamed, every round's text passes on as it comes (``tool_round.py``); the tool calls handed to
the client, the finish reason, the usage and ``[DONE]`` come at the end. One span covers the whole
request (``LoopTrace``); a client that leaves cancels the call running and ends the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from ..core.call import Call
from ..core.targets import Route
from ..core.usage import Answer, Usage
from ..errors import GatewayError
from ..observability.usage import Outcome
from .context import Admitted, Disconnect, Exchange, Stream
from .core import Pipeline
from .sse import error_event
from .tool_offer import Offer
from .tool_round import RoundReader
from .tool_steps import CallDone, CallStarted, Said, Step, not_run, run_call
from .tool_trace import LoopTrace, added

MAX_TOOL_ROUNDS = "max_tool_rounds"  # the finish reason of an answer cut short by the round limit
_KEPT = ("role", "content", "tool_calls", "reasoning_content", "reasoning_details")  # of an assistant message


@dataclass(slots=True)
class LoopAnswer:
    answer: Answer  # the last round's (its MCP calls taken out), with every round's usage
    steps: list[Step]


def usage_dict(usage: Usage) -> dict[str, Any]:
    """A chat answer's ``usage`` object."""
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def _message(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    return message if isinstance(message, dict) else {}


class LoopStream:
    """The loop streamed: chat events (bytes) and steps as they come. ``close()`` ends it however
    far it got (the open round settled and recorded, the span ended)."""

    def __init__(self, events: AsyncGenerator[bytes | Step, None], loop: ToolLoop):
        self._events = events
        self._loop = loop

    def __aiter__(self) -> AsyncIterator[bytes | Step]:
        return self._events

    async def close(self) -> None:
        try:
            await self._events.aclose()
        finally:
            await self._loop.cleanup()


class ToolLoop:
    """One request's loop (see the module docstring). ``guards`` makes a fresh watch on the
    client's connection for each wait; ``lead``: the text put between the texts of two rounds."""

    def __init__(self, pipeline: Pipeline, exchange: Exchange, offer: Offer, call: Call, route: Route | None,
                 guards: Callable[[], Disconnect], *, lead: str = "", cache_control: str | None = None):
        self.pipeline, self.exchange, self.offer, self.route = pipeline, exchange, offer, route
        tools = [*(call.body.get("tools") or ()), *offer.tools]
        body = {**call.body, "tools": tools} if tools else {k: v for k, v in call.body.items()
                                                             if k not in ("tools", "tool_choice")}
        self.call = replace(call, body=body)
        self.guards, self.lead, self.cache_control = guards, lead, cache_control
        self.max_rounds = exchange.snapshot.routing.max_tool_rounds
        self.usage = Usage(0, 0)
        self.rounds = 0  # model rounds admitted
        self.tool_rounds = 0  # rounds of tool calls run
        self.wrote = False  # a round wrote text
        self.current: Stream | None = None  # the round being streamed
        self.watch: Disconnect | None = None  # the watch on the client while it streams
        self._opened: tuple[Admitted, Stream] | None = None  # the round ``_after`` opened
        self.trace = LoopTrace(exchange.outcome.trace) if exchange.outcome.trace is not None else None
        exchange.outcome.trace = self.trace

    # --- one round ------------------------------------------------------------------------------
    async def admit(self) -> Admitted:
        """The next round admitted (the first on the request's own exchange, the others on their own)."""
        exchange = self.exchange if self.rounds == 0 else self._exchange()
        self.rounds += 1
        admitted = await self.pipeline.admit(exchange, self.call, self.route)
        self.route = admitted.route
        return admitted

    def _exchange(self) -> Exchange:
        first = self.exchange
        outcome = Outcome(first.outcome.request_id, first.outcome.client, first.outcome.endpoint, "", 200,
                          time.perf_counter(), trace=self.trace)
        return Exchange(first.snapshot, first.client, outcome)

    def _split(self, calls: object) -> tuple[list[CallStarted], list[dict[str, Any]]]:
        """A round's tool calls: those to MCP tools (to run), and the client's own (to hand on)."""
        mcp: list[CallStarted] = []
        client: list[dict[str, Any]] = []
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            found = self.offer.functions.get(str(function.get("name"))) if isinstance(function, dict) else None
            if found is None or not isinstance(function, dict):
                client.append(call)
            else:
                mcp.append(CallStarted(str(call.get("id") or ""), found, str(function.get("arguments") or "")))
        return mcp, client

    async def _call(self, started: CallStarted) -> CallDone | None:
        """One call run while the client's connection is watched; None: the client left (the call
        was cancelled, and is recorded so)."""
        guard = self.guards()
        try:
            return await run_call(self.pipeline.runtime.tools, self.exchange, started)
        except asyncio.CancelledError:
            if not guard.absorb():
                raise
            return None
        finally:
            guard.close()

    def _next(self, message: dict[str, Any], done: list[CallDone]) -> None:
        """The conversation carried on: the round's assistant message and a tool message per call."""
        body = dict(self.call.body)
        kept = {k: message[k] for k in _KEPT if k in message}
        kept["role"] = "assistant"
        results = [{"role": "tool", "tool_call_id": d.call_id, "content": d.text} for d in done]
        body["messages"] = [*(body.get("messages") or ()), kept, *results]
        if body.get("tool_choice") is not None and body["tool_choice"] not in ("auto", "none"):
            body["tool_choice"] = "auto"  # forcing a tool applies to the first round only
        self.call = replace(self.call, body=body)

    def _count(self, usage: Usage | None) -> None:
        if usage is not None:
            self.usage = added(self.usage, usage)

    # --- whole ----------------------------------------------------------------------------------
    async def whole(self, admitted: Admitted) -> LoopAnswer | None:
        steps: list[Step] = list(self.offer.listed)
        try:
            while True:
                result = await self.pipeline.dispatch(admitted, self.guards(), self.cache_control)
                if result is None:
                    return None
                assert isinstance(result, Answer)
                self._count(result.usage)
                message = _message(result.data)
                mcp, client = self._split(message.get("tool_calls"))
                if not mcp:
                    return self._final(result, steps, client, None)
                if self.tool_rounds >= self.max_rounds:
                    return self._final(result, [*steps, *map(not_run, mcp)], client, MAX_TOOL_ROUNDS)
                steps += self._said(message.get("content"), message.get("reasoning_content"))
                done: list[CallDone] = []
                for started in mcp:
                    ran = await self._call(started)
                    if ran is None:
                        return None
                    done.append(ran)
                steps += done
                self.tool_rounds += 1
                if client:
                    return self._final(result, steps, client, "tool_calls")
                self._next(message, done)
                admitted = await self.admit()
        finally:
            self.finish()

    @staticmethod
    def _said(text: object, reasoning: object) -> list[Step]:
        text = text if isinstance(text, str) else ""
        reasoning = reasoning if isinstance(reasoning, str) else ""
        return [Said(text, reasoning)] if text or reasoning else []

    def _final(self, answer: Answer, steps: list[Step], client: list[dict[str, Any]],
               finish: str | None) -> LoopAnswer:
        data = dict(answer.data)
        choices = list(data.get("choices") or ())
        if choices and isinstance(choices[0], dict):
            message = {k: v for k, v in _message(data).items() if k != "tool_calls"}
            if client:
                message["tool_calls"] = client
            choices[0] = {**choices[0], "message": message}
            if finish is not None:
                choices[0]["finish_reason"] = finish
            data["choices"] = choices
        data["usage"] = usage_dict(self.usage)
        return LoopAnswer(Answer(data, self.usage), steps)

    # --- streamed -------------------------------------------------------------------------------
    async def stream(self, admitted: Admitted) -> LoopStream | None:
        """The loop as a stream, its first round already answering (None: the client left)."""
        try:
            stream = await self._dispatch(admitted)
        except BaseException:
            self.finish()
            raise
        if stream is None:
            self.finish()
            return None
        return LoopStream(self._events(admitted, stream), self)

    async def _dispatch(self, admitted: Admitted) -> Stream | None:
        self.watch = watch = self.guards()
        result = await self.pipeline.dispatch(admitted, watch, self.cache_control)
        assert result is None or isinstance(result, Stream)
        self.current = result
        return result

    async def _events(self, admitted: Admitted, stream: Stream) -> AsyncGenerator[bytes | Step, None]:
        try:
            for listed in self.offer.listed:
                yield listed
            while True:
                reader = RoundReader(self.call.model, self.lead if self.wrote else "")
                async for item in stream:
                    out = reader.feed(item)
                    if out:
                        yield out[0] if len(out) == 1 else b"".join(out)
                await stream.close()
                self.current = None
                self._count(admitted.exchange.outcome.usage)
                if reader.failed or self.watch is not None and self.watch.fired:
                    return
                if not reader.done:
                    yield error_event("The provider's stream ended before it was complete.")
                    return
                self.wrote = self.wrote or bool(reader.content)
                async with aclosing(self._after(reader)) as steps:
                    async for step in steps:
                        yield step
                opened, self._opened = self._opened, None
                if opened is None:
                    return
                admitted, stream = opened
        finally:
            await self.cleanup()

    async def _after(self, reader: RoundReader) -> AsyncGenerator[bytes | Step, None]:
        """What follows a streamed round: the end of the stream, or its tool calls run and the next
        round opened (``self._opened``)."""
        mcp, client = self._split(reader.tool_calls())
        usage = usage_dict(self.usage) if self.call.wants_usage else None
        if not mcp:
            yield reader.ending(client, reader.finish or "stop", usage)
            return
        if self.tool_rounds >= self.max_rounds:
            for started in mcp:
                yield not_run(started)
            yield reader.ending(client, MAX_TOOL_ROUNDS, usage)
            return
        for step in self._said("".join(reader.content), "".join(reader.reasoning)):
            yield step
        done: list[CallDone] = []
        for started in mcp:
            yield started
            ran = await self._call(started)
            if ran is None:
                return
            done.append(ran)
            yield ran
        self.tool_rounds += 1
        if client:
            yield reader.ending(client, "tool_calls", usage)
            return
        self._next(reader.message(), done)
        try:
            admitted = await self.admit()
            stream = await self._dispatch(admitted)
            self._opened = (admitted, stream) if stream is not None else None
        except GatewayError as exc:
            yield error_event(exc.message, exc.type, exc.code, exc.details())

    async def cleanup(self) -> None:
        """The open round closed (settled and recorded), the span ended; safe to call again."""
        stream, self.current = self.current, None
        try:
            if stream is not None:
                await stream.close()
        finally:
            self.finish()

    def finish(self) -> None:
        if self.trace is not None:
            self.trace.finish()
