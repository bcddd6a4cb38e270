"""The guard stage: the guardrails (``gateway/guardrails/``) on every request that carries text.

    call, guard = await guard_input(calls, exchange, call)   # Pipeline.admit, before anything is held
    answer, blocked = await guard_answer(guard, call, answer)  # a whole answer, before it is recorded
    stream = guard_stream(admitted, guard, stream)             # a stream (``guard_stream.py``)

Input: the request's texts (``guardrails.body.request_texts`` of its operation, in OpenAI's shape)
pass the guards its alias and client select. A block raises ``GuardrailBlocked`` (400, in the
caller's dialect; ``admit`` records it with ``error_code: guardrail_blocked``): nothing reaches
an upstream. A mask (or a webhook's replacement) rewrites ``call.body``.

Same-dialect pass-through (Anthropic to Anthropic, Gemini to Gemini) sends the client's own body,
which the guards have not read in that shape. A request whose body a guard changed, or whose
answer the output guards must read (or placeholders be restored in), is therefore translated
like any other: its ``dialect`` becomes OpenAI's, so every adapter sends the guarded OpenAI-shape
body and answers in OpenAI's shape, which the guards read and the dialect's renderer translates
back (``native_body`` stays, the client's own, for the renderer; no adapter sends it). What
translation cannot carry (fields OpenAI's shape has no place for) is then not sent. A request the
guards only log, or that nothing matched in with no output guard, still passes through.

No guard configured (the common case): ``admit`` looks once and does not call ``guard_input``;
guards configured but none for this request: one cached lookup, no guard made.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.call import CHAT, Call
from ..core.usage import Answer
from ..errors import GuardrailBlocked
from ..guardrails.engine import RequestGuard
from ..routing.guard_calls import GuardCalls
from .context import Exchange

OPENAI = "openai"  # the dialect a guarded call is translated from (see the module docstring)


async def guard_input(calls: GuardCalls, exchange: Exchange, call: Call) -> tuple[Call, RequestGuard | None]:
    """``call`` through its input guards: the call to send (masked, or made to be translated) and
    the request's guard (None: no guard applies). Raises ``GuardrailBlocked``."""
    snapshot = exchange.snapshot
    guard = snapshot.guardrails.guard_for(call.model, exchange.client, lambda: calls.remote(snapshot))
    if guard is None:
        return call, None
    exchange.outcome.guardrails = guard.events  # counted, logged and written to the ledger with the request
    verdict = await guard.scan_input(call.operation, call.body)
    if verdict.blocked is not None:
        raise verdict.blocked.error()
    if verdict.changed or (call.native_body is not None and call.operation == CHAT and call.dialect != OPENAI
                           and guard.guards_output):
        call = replace(call, body=verdict.body, dialect=OPENAI)
    return call, guard


async def guard_answer(guard: RequestGuard | None, call: Call,
                       answer: Answer) -> tuple[Answer, GuardrailBlocked | None]:
    """A whole answer through the output guards (placeholders restored): the answer the client gets,
    or the error it gets instead."""
    if guard is None or not guard.guards_output:
        return answer, None
    verdict = await guard.scan_output(call.operation, answer.data)
    if verdict.blocked is not None:
        return answer, verdict.blocked.error()
    return (Answer(verdict.body, answer.usage) if verdict.changed else answer), None
