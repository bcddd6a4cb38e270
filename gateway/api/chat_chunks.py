"""Reading the pipeline's OpenAI chat chunks fast, for the dialects that rewrite them.

Most events of a chat stream are one text delta of the first choice. ``text_delta`` recognises such
an event by its bytes and returns the text still JSON-escaped, which a dialect can put straight into
its own JSON (a JSON string's escapes mean the same in every JSON document): no parse and no dump
per event. Anything else (a role, reasoning, tool calls, a finish reason, usage, other fields in the
delta) returns None, and the dialect reads the event the slow way, with the same result.
``events`` splits an item of the pipeline's stream (whole ``data:`` events, one line each) into
their data.
"""

from __future__ import annotations

import re

# the choices of a chunk that are one choice, index 0, whose delta is only text (a role too is left
# to the slow path) and whose finish_reason is null: the start, then the text and what must follow it
MARK = b'"choices":[{"index":0,"delta":{"content":"'
REST = re.compile(rb'([^"\\]*(?:\\.[^"\\]*)*)"\}(?:,"logprobs":null)?,"finish_reason":null\}\]')


def text_delta(data: bytes) -> bytes | None:
    """The escaped text of a chunk that is one text delta of choice 0; None for any other chunk."""
    at = data.find(MARK)
    if at < 0 or b'"usage":{' in data:
        return None
    found = REST.match(data, at + len(MARK))
    return found.group(1) if found is not None else None


def events(item: bytes) -> list[bytes]:
    """The data of each event of ``item`` (whole ``data: ...`` events the pipeline wrote)."""
    if item.startswith(b"data: ") and item.endswith(b"\n\n") and item.find(b"\n") == len(item) - 2:
        return [item[6:-2]]
    return [event[6:] if event.startswith(b"data: ") else event.removeprefix(b"data:")
            for event in item.replace(b"\r\n", b"\n").split(b"\n\n") if event.startswith(b"data:")]

