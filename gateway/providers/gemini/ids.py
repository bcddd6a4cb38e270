"""Tool call ids: Gemini gives none (or its own), OpenAI clients need one per call and send it back.

A Gemini ``thoughtSignature`` on a function call must go back with that call on the next turn (Gemini 3
refuses the turn without it), so it rides in the id: ``call_<hex>`` + ``SEPARATOR`` + signature.
"""

from __future__ import annotations

import os

SEPARATOR = "__thought__"


def new_call_id(signature: str | None = None) -> str:
    base = "call_" + os.urandom(12).hex()
    return base + SEPARATOR + signature if signature else base


def signature_of(call_id: str) -> str | None:
    _, sep, signature = call_id.partition(SEPARATOR)
    return signature if sep and signature else None
