"""The cache key: a digest of the normalized request.

Two requests share a key when they ask the same thing of the same targets: the operation, the
model as asked for, the targets the client may be served by (a client limited to other providers
never sees their answers), and the body with its keys sorted (so field order does not matter).
Fields that do not change the answer are left out: ``stream`` and ``stream_options`` (the form of
the answer, handled by ``form_key``) and ``user`` (the end user's id, for abuse tracking). Every
other field is kept, whatever its name: messages, tools, tool_choice, response_format, temperature,
top_p, max_tokens, n, stop, seed, and any field an upstream may honour that this list would miss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

VERSION = b"gateway-cache-v1"
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user"})


def request_digest(operation: str, model: str, targets: Iterable[str], body: Mapping[str, Any]) -> str:
    """The hex sha256 of the normalized request; raises ``TypeError`` for a body orjson cannot
    write (never one parsed from JSON)."""
    kept = {name: value for name, value in body.items() if name not in IGNORED_FIELDS}
    digest = hashlib.sha256(VERSION)
    for part in (operation, model, "\x1f".join(sorted(targets))):
        digest.update(b"\0" + part.encode())
    digest.update(b"\0" + orjson.dumps(kept, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def form_key(digest: str, form: str, with_usage: bool = False) -> str:
    """The key of one form of the answer: ``json`` (a whole answer), or ``sse`` (a stream's events,
    which carry a usage chunk only when the client asked for one)."""
    return f"{digest}:{form}{':u' if with_usage else ''}"
