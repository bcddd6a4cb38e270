"""What every detector shares: a match, the detector's two questions, and a prepared view of a text.

Speed comes from never running a character-class regex over the whole text (CPython's ``re``
tries such a pattern at nearly every position). ``TextView`` maps the text once, with
``bytes.translate``, to byte strings of the same length where a digit is ``0``, a letter ``A``
or ``a``, a space `` `` (``classes``), where every character a key can hold is ``w`` (``tokens``),
or every character of a phone or card number ``0`` (``numbers``); detectors look for short
literal shapes in those (a literal search skips through text that cannot hold one), and run
their precise patterns only on the few places found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Joins the texts of one request into one scan (``local.py``): no detector's match can hold it.
SEPARATOR = "\x00"


@dataclass(frozen=True, slots=True)
class Match:
    """``text[start:end]`` is an ``entity`` (``email``, ``openai_key``, an operator pattern's name)."""

    start: int
    end: int
    entity: str


def _table(pairs: dict[bytes, int], default: int | None) -> bytes:
    table = bytearray(range(256)) if default is None else bytearray([default]) * 256
    for chars, to in pairs.items():
        for ch in chars:
            table[ch] = to
    return bytes(table)


DIGITS = b"0123456789"
UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = b"abcdefghijklmnopqrstuvwxyz"
# digits -> 0, letters -> A / a, white space -> space, the rest as it is (non-ASCII is "?")
CLASSES = _table({DIGITS: ord("0"), UPPER: ord("A"), LOWER: ord("a"), b" \t\r\n\x0b\x0c": ord(" ")}, None)
# the characters of keys and tokens (and of JWT's dotted parts) -> w, everything else -> space
TOKEN_CHARS = DIGITS + UPPER + LOWER + b"_-+/=."
TOKENS = _table({TOKEN_CHARS: ord("w")}, ord(" "))
# the characters of phone and card numbers (digits, + and the separators between groups) -> 0, the rest -> space
NUMBER_CHARS = DIGITS + b" .-()+/"
NUMBERS = _table({NUMBER_CHARS: ord("0")}, ord(" "))


class TextView:
    """A text and its byte maps, computed once and shared by the detectors that scan it."""

    __slots__ = ("text", "_raw", "_classes", "_tokens", "_numbers")

    def __init__(self, text: str) -> None:
        self.text = text
        self._raw: bytes | None = None
        self._classes: bytes | None = None
        self._tokens: bytes | None = None
        self._numbers: bytes | None = None

    @property
    def raw(self) -> bytes:
        """The text as ASCII, each other character as ``?``: one byte per character, same positions."""
        if self._raw is None:
            self._raw = self.text.encode("ascii", "replace")
        return self._raw

    @property
    def classes(self) -> bytes:
        if self._classes is None:
            self._classes = self.raw.translate(CLASSES)
        return self._classes

    @property
    def tokens(self) -> bytes:
        if self._tokens is None:
            self._tokens = self.raw.translate(TOKENS)
        return self._tokens

    @property
    def numbers(self) -> bytes:
        if self._numbers is None:
            self._numbers = self.raw.translate(NUMBERS)
        return self._numbers


class Detector(Protocol):
    """Finds one family of entities. ``find`` reports the matches that start at or after ``start``
    (what comes before is context a boundary check may look at); ``hold`` answers, for a stream,
    from which index of ``text`` a match might still be growing: everything before it is decided."""

    def find(self, view: TextView, start: int) -> list[Match]: ...

    def hold(self, text: str) -> int: ...


def trailing_run(text: str, chars: str, limit: int) -> int:
    """The index where ``text``'s trailing run of ``chars`` begins, at most ``limit`` back."""
    cut = len(text.rstrip(chars))
    return max(cut, len(text) - limit)
