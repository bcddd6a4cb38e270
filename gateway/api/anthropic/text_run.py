"""The usual chunk of an OpenAI stream, a piece of text and nothing else, rewritten as Anthropic's
``text_delta`` from its bytes, without parsing it (the stream's hot path: ``stream.MessageEvents``).

``text_span`` finds the text of one such chunk (still JSON-escaped, which is what the event needs).
A stream repeats the same bytes around every piece of text (its id, model, created, the choice's
closing), so once one chunk has shown them (``TextRun.learn``), the chunks that follow are read by
comparing those bytes and finding the text's closing quote, not by parsing (``TextRun.rewrite``): a
chunk is taken only when it is exactly the learned head, a non-empty text and the learned tail.
"""

from __future__ import annotations

_HEAD = b'"choices":[{"index":0,"delta":{"content":"'
_TAILS = (b'"},"finish_reason":null}]', b'"},"logprobs":null,"finish_reason":null}]',
          b'"},"finish_reason":null,"logprobs":null}]')
_BACKSLASH = 0x5C


def text_span(event: bytes) -> tuple[int, int] | None:
    """Where the text is in a ``data:`` event whose only choice's delta is ``{"content": text}`` (not
    finishing, no usage): (start, end) of the JSON-escaped text; None for any other event."""
    start = event.find(_HEAD)
    if start < 0 or not event.startswith(b"data: "):
        return None
    start += len(_HEAD)
    end = _closing_quote(event, start)
    if end < 0 or not event.startswith(_TAILS, end) or b'"usage":{' in event:
        return None
    return start, end


class TextRun:
    """The bytes a stream's text chunks share around their texts, once learned from one of them."""

    __slots__ = ("head", "tail")

    def __init__(self) -> None:
        self.head = b""  # the event up to its text
        self.tail = b""  # the event after its text, the blank line included

    def learn(self, event: bytes, start: int, end: int) -> None:
        """Remember the bytes around the text of ``event`` (a whole event, its blank line included)."""
        self.head, self.tail = event[:start], event[end:]

    def rewrite(self, item: bytes, pos: int, text_head: bytes, text_end: bytes) -> tuple[list[bytes], int, int]:
        """The chunks from ``pos`` on that are the learned head, a text and the learned tail, as text_delta
        events (``text_head`` + text + ``text_end``): (their bytes, where the first other chunk starts,
        the texts' length)."""
        head, tail = self.head, self.tail
        out: list[bytes] = []
        chars = 0
        skip, find, starts = len(head), item.find, item.startswith
        while tail and starts(head, pos):
            start = pos + skip
            end = find(b'"', start)
            if item[end - 1] == _BACKSLASH:  # perhaps an escaped quote
                end = _closing_quote(item, start)
            if end <= start or not starts(tail, end):
                break
            out += (text_head, item[start:end], text_end)
            chars += end - start
            pos = end + len(tail)
        return out, pos, chars


def _closing_quote(data: bytes, start: int) -> int:
    """Where the JSON string whose text starts at ``start`` ends (-1: nowhere)."""
    end = data.find(b'"', start)
    while end > start and data[end - 1] == _BACKSLASH:  # an escaped quote, unless its backslash is escaped
        escapes = end - start - len(data[start:end].rstrip(b"\\"))
        if escapes % 2 == 0:
            break
        end = data.find(b'"', end + 1)
    return end
