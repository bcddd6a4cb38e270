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

from .base import Match, TextView, trailing_run
from .checks import IBAN_LENGTHS, iban_ok, ipv6_ok, is_card

_EMAIL_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+\-]{1,64}")
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
                           r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])")
_NUMBER_RUN = re.compile(rb"0[0 .()\-]{5,}0")  # on TextView.classes: seven characters or more
_DIGIT_GROUP = re.compile(r"\d+")
_PHONES = (
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,6}(?!\d|[.\-]\d)"),
    re.compile(r"(?<![\w(])(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?!\d|[.\-]\d)"),
    re.compile(r"(?<![\w.+\-])0\d{1,4}([ .\-])\d{2,4}(?:\1\d{2,4}){1,3}(?!\d|[ .\-]\d)"),  # one separator
)
_PHONE_DIGITS = ((8, 15), (10, 10), (10, 11))  # the digits each form must have
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                   r"(?!\w|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver|v|release|rev|build|firmware)[\s:=#.]*\Z")
_IPV6_TRIGGER = re.compile(rb":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]{0,45}")

# The characters a match of each family is made of: a stream holds back a trailing run of them.
_EMAIL_TAIL = "".join(chr(c) for c in range(33, 127) if chr(c).isalnum() or chr(c) in "._%+-@")
_NUMBER_TAIL = "0123456789 .-()+"
_IBAN_TAIL = "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_IPV6_TAIL = "0123456789abcdefABCDEF:."


class PiiDetector:
    """The ``pii`` guard's detector for the chosen entities."""

    def __init__(self, entities: Iterable[str]) -> None:
        self.entities = frozenset(entities)
        self._numbers = bool(self.entities & {"phone", "card", "ip"})
        tails: list[tuple[str, int]] = []
        if "email" in self.entities:
            tails.append((_EMAIL_TAIL, 64 + 1 + 255))
        if self._numbers:
            tails.append((_NUMBER_TAIL, 40))
        if "iban" in self.entities:
            tails.append((_IBAN_TAIL, 42))
        if "ip" in self.entities:
            tails.append((_IPV6_TAIL, 46))
        self._tails = tuple(tails)

    def hold(self, text: str) -> int:
        return min((trailing_run(text, chars, limit) for chars, limit in self._tails), default=len(text))

    def find(self, view: TextView, start: int) -> list[Match]:
        found: list[Match] = []
        raw = view.raw
        if "email" in self.entities and b"@" in raw:
            found += _emails(view.text, raw, start)
        if self._numbers:
            for run in _NUMBER_RUN.finditer(view.classes, start):
                found += self._numbers_in(view.text, run.start(), run.end(), start)
        if "iban" in self.entities:
            found += _ibans(view, start)
        if "ip" in self.entities and b":" in raw:
            found += _ipv6s(view.text, raw, start)
        return found

    def _numbers_in(self, text: str, begin: int, end: int, start: int) -> list[Match]:
        found: list[Match] = []
        lo, hi = max(begin - 1, 0), min(end + 2, len(text))  # a + or ( before; lookahead room after
        if "card" in self.entities and end - begin >= 13:
            found += _cards(text, begin, end)
        if "phone" in self.entities:
            for pattern, (least, most) in zip(_PHONES, _PHONE_DIGITS, strict=True):
                for m in pattern.finditer(text, lo, hi):
                    if least <= sum(ch.isdigit() for ch in m.group()) <= most:
                        found.append(Match(m.start(), m.end(), "phone"))
        if "ip" in self.entities:
            for m in _IPV4.finditer(text, lo, hi):
                if not _VERSION_BEFORE.search(text, max(0, m.start() - 24), m.start()):
                    found.append(Match(m.start(), m.end(), "ip"))
        return [m for m in found if m.start >= start]


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


def _cards(text: str, begin: int, end: int) -> list[Match]:
    """Card numbers among the digit groups of one run, the longest from each group, leftmost first."""
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(text, begin, end)]
    found: list[Match] = []
    i = 0
    while i < len(groups):
        last = _card_from(text, groups, i)
        if last is None:
            i += 1
            continue
        found.append(Match(groups[i][0], groups[last][1], "card"))
        i = last + 1
    return found


def _card_from(text: str, groups: list[tuple[int, int]], first: int) -> int | None:
    """The last group of the longest card starting at group ``first``, if there is one."""
    best: int | None = None
    digits = ""
    for last in range(first, len(groups)):
        if last > first and (groups[last][0] != groups[last - 1][1] + 1 or text[groups[last - 1][1]] not in " -"):
            break  # not one space or dash apart: another number
        digits += text[groups[last][0]:groups[last][1]]
        if len(digits) > 19:
            break
        if _grouped_like_a_card([b - a for a, b in groups[first:last + 1]]) and is_card(digits):
            best = last
    return best


def _grouped_like_a_card(lengths: list[int]) -> bool:
    if len(lengths) == 1:
        return True
    if lengths[:-1] == [4] * (len(lengths) - 1) and 1 <= lengths[-1] <= 4:
        return True
    return lengths in ([4, 6, 5], [4, 6, 4])


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


def _iban_at(text: str, classes: bytes, at: int) -> int | None:
    """The end of the IBAN starting at ``at``, or None."""
    length = IBAN_LENGTHS.get(text[at:at + 2])
    if length is None or (at > 0 and classes[at - 1] in b"0Aa"):
        return None
    compact: list[str] = []
    i = at
    while len(compact) < length and i < len(text):
        ch = text[i]
        if ch == " " and compact and i + 1 < len(text) and text[i + 1] != " " and len(compact) % 4 == 0:
            i += 1
            continue
        if classes[i] not in b"0A":
            return None
        compact.append(ch)
        i += 1
    if len(compact) != length or (i < len(text) and classes[i] in b"0Aa"):
        return None
    return i if iban_ok("".join(compact)) else None


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
