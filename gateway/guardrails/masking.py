"""Placeholders for masked values, and putting the originals back.

Within one request a value always gets the same placeholder (``<EMAIL_1>`` everywhere the same
address appears, in every message), numbered per entity in the order they are met. A
placeholder that the request already holds as text is skipped, so a restore can never swap a
client's own literal ``<EMAIL_1>`` for someone's address. Placeholders made by a guard with
``restore: true`` go into the restore table: the answer's placeholders are replaced by the
originals before the client sees it (``restore_text``, ``StreamRestorer`` across chunks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
_PARTIAL = re.compile(r"<[A-Z0-9_]{0,48}\Z")  # the start of a placeholder cut by a chunk boundary
MAX_PLACEHOLDER = 50


class Masker:
    """One request's placeholders (shared by its input and its output)."""

    __slots__ = ("_by_value", "_counts", "restores", "_avoid")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self.restores: dict[str, str] = {}  # placeholder -> original, for the guards with restore: true
        self._avoid: Sequence[str] = ()

    def avoid(self, texts: Sequence[str]) -> None:
        """Never hand out a placeholder that one of ``texts`` holds literally."""
        self._avoid = [t for t in texts if "<" in t]

    def placeholder(self, entity: str, value: str, restore: bool) -> str:
        label = entity.upper()
        found = self._by_value.get((label, value))
        if found is None:
            n = self._counts.get(label, 0)
            while True:
                n += 1
                found = f"<{label}_{n}>"
                if not any(found in text for text in self._avoid):
                    break
            self._counts[label] = n
            self._by_value[(label, value)] = found
        if restore:
            self.restores[found] = value
        return found


def restore_text(text: str, table: Mapping[str, str]) -> str:
    """``text`` with the placeholders of ``table`` replaced by their originals."""
    if not table or "<" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: table.get(m.group(), m.group()), text)


class StreamRestorer:
    """``restore_text`` for a stream: a placeholder cut between two chunks is held back until it
    is whole (at most ``MAX_PLACEHOLDER`` characters)."""

    __slots__ = ("_table", "_held")

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = table
        self._held = ""

    def feed(self, text: str) -> str:
        if not self._table:
            return text
        if self._held:
            text, self._held = self._held + text, ""
        cut = text.rfind("<")
        if cut >= 0 and len(text) - cut < MAX_PLACEHOLDER and _PARTIAL.match(text, cut):
            text, self._held = text[:cut], text[cut:]
        return restore_text(text, self._table)

    def finish(self) -> str:
        rest, self._held = self._held, ""
        return restore_text(rest, self._table)
