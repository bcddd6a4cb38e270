"""Guardrails: find, mask or block what goes to and comes from the models (docs/guardrails.md).

Pure Python, no model download, no I/O of its own: the webhook and moderation guards call out
through the callables the caller hands over (``Remote``). The pipeline's view of it:

- ``snapshot.guardrails.guard_for(alias, client, remote) -> RequestGuard | None`` (``engine.py``;
  ``for_request`` makes one whatever the selection);
- ``RequestGuard.scan_input(operation, body)`` / ``scan_output(operation, answer)`` -> ``Verdict``;
- ``RequestGuard.output_scanner() -> StreamScanner`` (``feed(delta)``, ``await finish()``);
- ``RequestGuard.events`` -> ``GuardEvent`` s for ``gateway_guardrail_actions_total``, the
  ledger and the audit log; ``Block.message()`` for the client's error;
- ``body.py``: the text fields of OpenAI-shape requests, answers and stream chunks.

Modules: ``config`` (the YAML schema), ``build`` (config -> ``Guardrails``), ``engine``,
``local`` (the guards run in-process, one pass), ``stream``, ``remote`` (webhook, moderation),
``masking`` (placeholders, restore), ``body``, ``events``; the detectors ``pii``, ``numbers``,
``secrets``, ``custom`` (operator patterns, checked by ``patterns``) over ``base.TextView``.
"""

from .body import BodyTexts, answer_texts, chunk_texts, json_texts, request_texts
from .engine import Guardrails, RequestGuard, TextVerdict, Verdict
from .events import Block, GuardEvent, ledger_text
from .remote import HttpAnswer, ModerationCall, Remote
from .stream import StreamScanner, StreamStep

__all__ = ["Block", "BodyTexts", "GuardEvent", "Guardrails", "HttpAnswer", "ModerationCall", "Remote",
           "RequestGuard", "StreamScanner", "StreamStep", "TextVerdict", "Verdict", "answer_texts", "chunk_texts",
           "json_texts", "ledger_text", "request_texts"]
