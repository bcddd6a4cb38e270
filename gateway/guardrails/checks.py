"""The checksums and tables that tell a real card number or IBAN from any run of digits."""

from __future__ import annotations

import ipaddress

# IBAN length per country (the IBAN registry, ISO 13616).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


# a digit doubled, its two digits added (Luhn), as a bytes.translate table over ASCII digits
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (``digits``: ASCII digits only)."""
    raw = digits.encode()
    total = sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLED)) - 48 * len(raw)
    return total % 10 == 0


def _in(prefix: str, low: int, high: int) -> bool:
    return low <= int(prefix) <= high


def card_scheme_ok(digits: str) -> bool:
    """Whether the number starts like a card of a known scheme and has one of its lengths."""
    n, first = len(digits), digits[0]
    if first == "4":
        return n in (13, 16, 19)  # Visa
    if first == "5":
        if _in(digits[:2], 51, 55):
            return n == 16  # Mastercard
        return digits[:2] in ("50", "56", "57", "58") and 12 < n < 20  # Maestro
    if first == "3":
        if digits[:2] in ("34", "37"):
            return n == 15  # American Express
        if _in(digits[:4], 3528, 3589):
            return 15 < n < 20  # JCB
        return (digits[:2] in ("36", "38", "39") or _in(digits[:3], 300, 305)) and 13 < n < 20  # Diners
    if first == "2":
        if _in(digits[:4], 2221, 2720):
            return n == 16  # Mastercard 2-series
        return _in(digits[:4], 2200, 2204) and 15 < n < 20  # Mir
    if first == "6":
        # Discover, UnionPay, Maestro, RuPay
        return (digits[:4] == "6011" or digits[:2] in ("62", "65") or _in(digits[:3], 644, 649)
                or digits[:2] in ("60", "63", "67")) and 15 < n < 20
    return False


def is_card(digits: str) -> bool:
    return 12 < len(digits) < 20 and card_scheme_ok(digits) and luhn_ok(digits)


_LETTER_VALUES = {ord(ch): str(10 + i) for i, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def iban_ok(compact: str) -> bool:
    """An IBAN without spaces: its country's length and the ISO 7064 mod-97 check."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    moved = (compact[4:] + compact[:4]).translate(_LETTER_VALUES)
    return moved.isdigit() and int(moved) % 97 == 1


def ipv6_ok(candidate: str) -> bool:
    """A valid IPv6 address with at least two groups of hex digits (``::1`` and ``a::`` are too
    short to be anyone's address and too easy to meet in code)."""
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return sum(1 for group in candidate.split(":") if group) >= 2
