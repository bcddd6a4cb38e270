"""What the cache keeps for one answer: the answer itself, and what it cost when it was fetched."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

JSON = "json"  # a whole answer: the OpenAI-shape JSON body
SSE = "sse"  # a stream: its events as the client received them, ``data: [DONE]`` included
ENTRY_OVERHEAD = 256  # bytes counted per entry beside its payload (key, bookkeeping)
# The largest answer kept, whatever ``max_mb``: about 140k tokens as OpenAI-shape stream events,
# more than any model writes in one answer. A stream being captured holds at most this (or its
# cache's ``max_mb``, if smaller) before the capture stops.
MAX_ENTRY_BYTES = 32 << 20


def entry_limit(max_bytes: int) -> int:
    """The largest payload kept in a cache of ``max_bytes``: the whole cache (an entry larger
    than that could never be kept), at most ``MAX_ENTRY_BYTES``."""
    return min(max_bytes, MAX_ENTRY_BYTES)


@dataclass(frozen=True, slots=True)
class Entry:
    form: str  # JSON | SSE
    payload: bytes
    provider: str  # the provider that answered (for the record of a hit)
    model: str  # the upstream model that answered
    prompt_tokens: int
    completion_tokens: int
    usage_exact: bool
    cost_usd: float  # what the answer cost when fetched: what a hit saves

    @property
    def size(self) -> int:
        """Bytes the entry is counted as against ``max_mb``."""
        return len(self.payload) + len(self.provider) + len(self.model) + ENTRY_OVERHEAD

    def encode(self) -> bytes:
        """One bytes value (for Redis): a JSON head line, then the payload."""
        head = [self.form, self.provider, self.model, self.prompt_tokens, self.completion_tokens,
                self.usage_exact, self.cost_usd]
        return orjson.dumps(head) + b"\n" + self.payload


def decode(raw: bytes) -> Entry | None:
    """The entry ``Entry.encode`` wrote; None for anything else (a value it did not write)."""
    head, sep, payload = raw.partition(b"\n")
    if not sep:
        return None
    try:
        form, provider, model, prompt, completion, exact, cost = orjson.loads(head)
        return Entry(str(form), payload, str(provider), str(model), int(prompt), int(completion), bool(exact),
                     float(cost))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
