"""Personal data: e-mail addresses, phone numbers, payment cards, IBANs, IP addresses.

What counts (docs/guardrails.md has the operator's version):

- ``email``: ``local@domain.tld`` (ASCII; a local part of at most 64 characters).
- ``phone``: international numbers written with ``+`` (8 to 15 digits, spaces, dots, dashes or
  brackets between groups), North American ``(415) 555-2671`` / ``415-555-2671`` /
  ``415.555.2671`` / ``415 555 2671``, and national numbers with a trunk ``0`` in groups
  (``020 7946 0958``, ``06 12 34 56 78``: 10 or 11 digits, one kind of separator). A bare run of digits is not a phone
  (order numbers, ids), nor is a date (``2024-01-15``, ``15/01/2024``, ``01.02.2024``).
- ``card``: 13 to 19 digits, unbroken or in groups of four (American Express 4-6-5, Diners 4-6-4),
  that start like a card scheme and pass the Luhn check.
- ``iban``: a country code with its registered length, unbroken or in groups of four, that
  passes the mod-97 check; upper case, as IBANs are written.
- ``ip``: a dotted quad of 0-255 octets without leading zeros, unless it follows a version word
  (``version``, ``ver``, ``v``, ``release``, ``rev``, ``build``, ``firmware``), is glued to a
  letter (``v1.2.3.4``) or is part of a longer dotted run (``1.2.3.4.5``); and IPv6 addresses
  (full or ``::``-compressed, at least two groups: ``::1`` is not reported).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .base import Match, Tails, TextView, hold_of
from .checks import IBAN_LENGTHS, iban_ok, ipv6_ok
from .numbers import ipv4s, phones_and_cards

_EMAIL_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+\-]{1,64}")
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
                           r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])")
_TRIGGER = re.compile(rb"[@:0-9]")
# every compressed IPv6 address has "::", every full one seven colons (a time, 10:22:31, has two)
_IPV6_TRIGGER = re.compile(rb"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]{0,45}")

# The characters a match of each family is made of: a stream holds back a trailing run of them.
_EMAIL_TAIL = "".join(chr(c) for c in range(33, 127) if chr(c).isalnum() or chr(c) in "._%+-@")
_NUMBER_TAIL = "0123456789 .-()+/"
_IBAN_TAIL = "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_IPV6_TAIL = "0123456789abcdefABCDEF:."


class PiiDetector:
    """The ``pii`` guard's detector for the chosen entities."""

    def __init__(self, entities: Iterable[str]) -> None:
        self.entities = frozenset(entities)
        self._numbers = bool(self.entities & {"phone", "card"})
        tails: list[tuple[str, int]] = []
        if "email" in self.entities:
            tails.append((_EMAIL_TAIL, 64 + 1 + 255))
        if self.entities & {"phone", "card", "ip"}:
            tails.append((_NUMBER_TAIL, 40))
        if "iban" in self.entities:
            tails.append((_IBAN_TAIL, 42))
        if "ip" in self.entities:
            tails.append((_IPV6_TAIL, 46))
        self.tails: Tails = tuple(tails)

    def hold(self, text: str) -> int:
        return hold_of(text, self.tails)

    def find(self, view: TextView, start: int) -> list[Match]:
        found: list[Match] = []
        raw = view.raw
        if _TRIGGER.search(raw, start) is None:  # every entity has an @, a digit or a colon
            return found
        if "email" in self.entities and b"@" in raw:
            found += _emails(view.text, raw, start)
        if self._numbers:
            found += phones_and_cards(view, start, "phone" in self.entities, "card" in self.entities)
        if "ip" in self.entities:
            found += ipv4s(view, start)
        if "iban" in self.entities:
            found += _ibans(view, start)
        if "ip" in self.entities and b":" in raw:
            found += _ipv6s(view.text, raw, start)
        return found


def _emails(text: str, raw: bytes, start: int) -> list[Match]:
    found: list[Match] = []
    at = raw.find(b"@", start)
    while at >= 0:
        local = _EMAIL_LOCAL_REVERSED.match(text[max(start, at - 64):at][::-1])
        domain = _EMAIL_DOMAIN.match(text, at + 1) if local else None
        if local and domain:
            begin = at - local.end()
            while text[begin] == ".":
                begin += 1
            if begin < at:
                found.append(Match(begin, domain.end(), "email"))
                at = domain.end()
        at = raw.find(b"@", at + 1)
    return found


def _ibans(view: TextView, start: int) -> list[Match]:
    found: list[Match] = []
    classes, text = view.classes, view.text
    at = classes.find(b"AA00", start)
    while at >= 0:
        end = _iban_at(text, classes, at)
        if end is not None:
            found.append(Match(at, end, "iban"))
        at = classes.find(b"AA00", end if end is not None else at + 1)
    return found


_IBAN_SHAPES: dict[int, re.Pattern[str]] = {}


def _iban_shape(length: int) -> re.Pattern[str]:
    """An IBAN of ``length`` characters, unbroken or with single spaces (not glued to a word after)."""
    shape = _IBAN_SHAPES.get(length)
    if shape is None:
        shape = _IBAN_SHAPES[length] = re.compile(rf"[A-Z]{{2}}[0-9]{{2}}(?: ?[A-Z0-9]){{{length - 4}}}(?![A-Za-z0-9])")
    return shape


def _iban_at(text: str, classes: bytes, at: int) -> int | None:
    """The end of the IBAN starting at ``at``, or None."""
    length = IBAN_LENGTHS.get(text[at:at + 2])
    if length is None or (at > 0 and classes[at - 1] in b"0Aa"):
        return None
    m = _iban_shape(length).match(text, at)
    if m is None or not iban_ok(m.group().replace(" ", "")):
        return None
    return m.end()


def _ipv6s(text: str, raw: bytes, start: int) -> list[Match]:
    found: list[Match] = []
    done = start
    for trigger in _IPV6_TRIGGER.finditer(raw, start):
        colon = trigger.start()
        if colon < done:
            continue
        left = _IPV6_CHARS.match(text[max(start, colon - 45):colon][::-1])
        right = _IPV6_CHARS.match(text, colon)
        begin = colon - (left.end() if left else 0)
        end = right.end() if right else colon
        while end > begin and text[end - 1] == ".":
            end -= 1
        if _glued(text, begin, end) or not ipv6_ok(text[begin:end]):
            continue
        found.append(Match(begin, end, "ip"))
        done = end
    return found


def _glued(text: str, begin: int, end: int) -> bool:
    """Whether the candidate is part of a word (``std::map``)."""
    return (begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] == "_")) or (
        end < len(text) and (text[end].isalnum() or text[end] == "_"))
