"""What a request may use, before it is sent: tokens held on limit windows, cost held on budgets."""

from __future__ import annotations

from ..core.call import CHAT, EMBEDDINGS, Call
from ..core.pricing import DEFAULT_OUTPUT_TOKENS, estimated_cost
from ..core.targets import Route
from ..core.tokens import estimate_prompt_tokens, estimate_tokens

# the body field each operation's input is in
_INPUT_FIELD = {"completions": "prompt", "embeddings": "input"}


def input_tokens(call: Call) -> int:
    if call.operation == CHAT:
        return estimate_prompt_tokens(call.body.get("messages"))
    value = call.body.get(_INPUT_FIELD.get(call.operation, "input"))
    return estimate_tokens(value if isinstance(value, str) else str(value))


def output_tokens(call: Call) -> int | None:
    """``max_tokens`` (or ``max_completion_tokens``), checked by the dialect's parser; None if not given."""
    body = call.body
    return int(body.get("max_tokens") or body.get("max_completion_tokens") or 0) or None


def cost_hold(call: Call, route: Route, prompt: int) -> float:
    """The cost held against the client's budget while the request runs (see ``estimated_cost``)."""
    output = 0 if call.operation == EMBEDDINGS else output_tokens(call) or DEFAULT_OUTPUT_TOKENS
    return estimated_cost((t.pricing for t in route.targets), prompt, output)
