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

from typing import NamedTuple, Protocol

# Joins the texts of one request into one scan (``local.py``): no detector's match can hold it.
SEPARATOR = "\x00"


class Match(NamedTuple):
    """``text[start:end]`` is an ``entity`` (``email``, ``openai_key``, an operator pattern's name).
    A named tuple: detectors make many, and a tuple is the cheapest object to make."""

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


Tails = tuple[tuple[str, int], ...]


class Detector(Protocol):
    """Finds one family of entities. ``find`` reports the matches that start at or after ``start``
    (what comes before is context a boundary check may look at).

    For a stream, ``hold`` answers from which index of ``text`` a match might still be growing
    (everything before it is decided). A detector whose answer is "the trailing run of these
    characters, at most this long" for each of its shapes lists them in ``tails`` (the stream then
    computes them all in one loop); one with empty ``tails`` is asked ``hold``."""

    tails: Tails

    def find(self, view: TextView, start: int) -> list[Match]: ...

    def hold(self, text: str) -> int: ...


def hold_of(text: str, tails: Tails) -> int:
    """The earliest start of ``text``'s trailing runs of each ``tails`` characters (each at most its limit)."""
    end = held = len(text)
    for chars, limit in tails:
        cut = max(len(text.rstrip(chars)), end - limit)
        if cut < held:
            held = cut
    return held
