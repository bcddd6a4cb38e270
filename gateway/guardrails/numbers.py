"""Phone numbers, payment cards and IPv4 addresses: the ``pii`` entities made of digits.

Phones and cards are looked for in runs of 11 or more number characters (digits, spaces, dots,
dashes, brackets, ``+``): one literal search over ``TextView.numbers`` finds them, skipping
through prose a stretch at a time; dates (``2024-06-01``: 10), amounts and short numbers are
never looked at. In each run, cheap counts decide which shapes can be there (13 digits for a
card, 10 and two separators for a national phone, a ``+`` for an international one) and only
those patterns run, on the run alone. The patterns work on ``TextView.classes`` (every digit is
``0``) for the shapes, or on ``TextView.raw`` where the digit itself matters (a trunk ``0``).

IPv4 addresses are found from ``.0.0.`` (the middle of a dotted quad) with a pattern that starts
with a literal, so CPython's ``re`` jumps from one dot to the next.
"""

from __future__ import annotations

import re

from .base import DIGITS, Match, TextView
from .checks import is_card

# 13-19 digits: unbroken, 4-4-4-4 and 1-3 more, 4-4-4 and 1-4 more, 4-6-4 or 4-6-5, one kind of separator
_CARD = re.compile(rb"0000(?<![0Aa_]0000)(?:0{9,15}"
                   rb"|(?P<s>[ \-])0000(?P=s)0000(?P=s)0000(?:(?P=s)0{1,3})?"
                   rb"|(?P<t>[ \-])0000(?P=t)0000(?P=t)0{1,3}"
                   rb"|(?P<u>[ \-])000000(?P=u)0{4,5})(?![0Aa_]|[.\-]0)")
# North America, (415) 555-2671, 415-555-2671, 415.555.2671, 415 555 2671 (an area code never starts
# with 0 or 1); and a trunk 0 with groups and one kind of separator, 020 7946 0958, 06 12 34 56 78, or
# an area code and the number, 030 12345678, 030/12345678
_NATIONAL = re.compile(
    rb"(?P<nanp>(?:(?<![0-9A-Za-z_(])[2-9][0-9]{2}[ .\-]|\([2-9][0-9]{2}\)[ .\-]?)[0-9]{3}[ .\-][0-9]{4}"
    rb"(?![0-9A-Za-z_]|[.\-][0-9]))"
    rb"|(?P<trunk>(?<![0-9A-Za-z_.+\-/])0[0-9]{1,4}(?:(?P<s>[ .\-])[0-9]{2,4}(?:(?P=s)[0-9]{2,4}){1,3}"
    rb"|[ \-/][0-9]{5,8})(?![0-9A-Za-z_]|[ .\-/][0-9]))")
# + and digits with single separators or brackets between: +44 20 7946 0958, +1 (415) 555-2671
_INTERNATIONAL = re.compile(rb"\+(?<![0-9A-Za-z_+]\+)[0-9](?:[ .\-]?\(?[0-9]+\)?)*+(?![0-9]|[.\-][0-9])")
_QUAD = re.compile(rb"\.0{1,3}\.0{1,3}\.")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                   r"(?!\w|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver|v|release|rev|build|firmware)[\s:=#.]*\Z")
_SEPARATORS = b" .-()"


_RUN = b"0" * 11
_NON_DIGITS = b" .-()+/"
_LEADING = b" .-)/"
_WORD = b"0Aa_"
_TRAILING = b" .-(+)/"


def phones_and_cards(view: TextView, start: int, phones: bool, cards: bool) -> list[Match]:
    found: list[Match] = []
    numbers, raw, classes = view.numbers, view.raw, view.classes
    at = numbers.find(_RUN, start)
    while at >= 0:
        stop = numbers.find(b" ", at + len(_RUN))
        end = len(numbers) if stop < 0 else stop
        while raw[at] in _LEADING:  # from the first digit, + or (
            at += 1
        while raw[end - 1] in _TRAILING:  # to the last digit
            end -= 1
        # glued to a word on its left (an IBAN's digits, an id), no card or phone starts here
        if end - at >= len(_RUN) and (at == 0 or classes[at - 1] not in _WORD):
            separators = raw[at:end].translate(None, DIGITS)
            digits = end - at - len(separators)
            if cards and digits >= 13:
                found += _cards(view.text, classes, at, end, separators)
            # a North American number has two separators and no group of five digits; a national one a trunk 0
            if phones and digits >= 10 and separators and raw[at] != 43 and (  # 43: +, international only
                    raw[at] == 48 or (len(separators) >= 2 and classes.find(b"00000", at, end) < 0)):
                found += _national(raw, at, end)
            if phones and b"+" in separators:
                found += _international(raw, at, end)
        at = numbers.find(_RUN, end)
    return found


def _cards(text: str, classes: bytes, begin: int, end: int, separators: bytes) -> list[Match]:
    if not separators:
        glued = (begin > 0 and classes[begin - 1] in _WORD) or (end < len(classes) and classes[end] in _WORD)
        return [Match(begin, end, "card")] if end - begin < 20 and not glued and is_card(text[begin:end]) else []
    found: list[Match] = []
    for m in _CARD.finditer(classes, begin, end):
        found += _card(text, m)
    return found


def _national(raw: bytes, begin: int, end: int) -> list[Match]:
    return [Match(m.start(), m.end(), "phone") for m in _NATIONAL.finditer(raw, begin, end)
            if m.lastgroup != "trunk" or 10 <= len(m.group().translate(None, _NON_DIGITS)) <= 11]


def _international(raw: bytes, begin: int, end: int) -> list[Match]:
    return [Match(m.start(), m.end(), "phone") for m in _INTERNATIONAL.finditer(raw, begin, end)
            if 8 <= len(m.group().translate(None, _NON_DIGITS)) <= 15]


def _card(text: str, m: re.Match[bytes]) -> list[Match]:
    begin, end = m.span()
    if is_card(_digits(text, begin, end)):
        return [Match(begin, end, "card")]
    if m.group("s") and m.group().count(m.group("s")) == 4:  # 4-4-4-4 and more: the first 16 alone
        cut = text.rfind(text[begin + 4], begin, end)
        if is_card(_digits(text, begin, cut)):
            return [Match(begin, cut, "card")]
    return []


def ipv4s(view: TextView, start: int) -> list[Match]:
    text = view.text
    found: list[Match] = []
    done = start
    for quad in _QUAD.finditer(view.classes, start):
        lo = max(start, quad.start() - 3)
        if lo < done:
            continue
        for m in _IPV4.finditer(text, lo, min(quad.end() + 4, len(text))):
            if not _VERSION_BEFORE.search(text, max(0, m.start() - 24), m.start()):
                found.append(Match(m.start(), m.end(), "ip"))
                done = m.end()
    return found


def _digits(text: str, begin: int, end: int) -> str:
    return text[begin:end].replace(" ", "").replace("-", "")
