"""The pii detector: what it reports and, as much, what it leaves alone (docs/guardrails.md says
which is which)."""

from __future__ import annotations

import pytest

from gateway.guardrails.base import TextView
from gateway.guardrails.checks import iban_ok, luhn_ok
from gateway.guardrails.config import PII_ENTITIES
from gateway.guardrails.pii import PiiDetector

DETECTOR = PiiDetector(PII_ENTITIES)


def found(text: str, detector: PiiDetector = DETECTOR) -> list[tuple[str, str]]:
    """What is reported, without the matches inside a longer one (as the guard resolves them)."""
    matches = detector.find(TextView(text), 0)
    outer = [m for m in matches if not any(o is not m and o.start <= m.start and m.end <= o.end
                                           and (o.end - o.start) > (m.end - m.start) for o in matches)]
    return sorted((m.entity, text[m.start:m.end]) for m in outer)


def luhn_valid(prefix: str) -> str:
    """``prefix`` and the check digit that makes it pass Luhn."""
    return next(prefix + d for d in "0123456789" if luhn_ok(prefix + d))


@pytest.mark.parametrize("value", [
    "jane.roe@example.com", "a+tag@sub.example.co.uk", "x_y-z@ex-ample.org", "ALL.CAPS@EXAMPLE.COM",
])
def test_emails(value):
    assert found(f"write to {value}, thanks") == [("email", value)]


@pytest.mark.parametrize("text", [
    "ping @handle on chat", "user@localhost is local", "see foo@bar for details", "a @ b .com",
    "the decorator @dataclass(frozen=True)",
])
def test_not_emails(text):
    assert found(text) == []


def test_an_email_ends_before_the_sentence_does():
    assert found("It is bob@example.com.") == [("email", "bob@example.com")]


@pytest.mark.parametrize("value", [
    "+44 20 7946 0958", "+1 (415) 555-2671", "+33612345678", "+49-30-901820", "(415) 555-2671", "415-555-2671",
    "415.555.2671", "415 555 2671", "020 7946 0958", "06 12 34 56 78", "030 12345678", "030/12345678",
])
def test_phones(value):
    assert found(f"call {value} today") == [("phone", value)]


@pytest.mark.parametrize("text", [
    "on 2024-01-15 at 10:30", "on 15/01/2024", "on 01.02.2024 and 05.06.2024 12:30:45", "at 12:30:45",
    "order 123456789012 shipped", "id 5551234567 is an id, not a phone", "ISBN 978-3-16-148410-0",
    "build 10.0.19045.3803", "1 250 000 EUR", "between 100-200-300 units", "area 115-555-2671 is not NANP",
    "timestamp 1717236151000",
])
def test_not_phones(text):
    assert [e for e in found(text) if e[0] == "phone"] == []


@pytest.mark.parametrize("value", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "378282246310005", "3782 822463 10005",
    "5555 5555 5555 4444", "6011 1111 1111 1117", "2223 0031 2200 3222", "3056 930902 5904",
])
def test_cards(value):
    assert found(f"card {value} expires") == [("card", value)]


@pytest.mark.parametrize("text", [
    "order 1234567812345678 shipped",  # fails Luhn
    "card 4111 1111 1111 1112",  # fails Luhn
    f"order {luhn_valid('100000000000000')} shipped",  # passes Luhn, but no card scheme starts with 1
    f"ticket {luhn_valid('90000000000000')} closed",
    "card 4111 11111 111 1111",  # not grouped like a card
    "tracking JD014600006251863214",
    "4111111111111111abc", "ref X4111111111111111 and X4111 1111 1111 1111",
])
def test_not_cards(text):
    assert [e for e in found(text) if e[0] == "card"] == []


def test_a_card_after_another_number():
    assert found("room 12, card 4111 1111 1111 1111") == [("card", "4111 1111 1111 1111")]


@pytest.mark.parametrize("value", [
    "DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "NO9386011117947",
])
def test_ibans(value):
    assert found(f"pay to {value} today") == [("iban", value)]


@pytest.mark.parametrize("text", [
    "pay to DE89 3704 0044 0532 0130 01 today",  # checksum
    "pay to DE89 3704 0044 0532 0130 today",  # too short for DE
    "pay to XX12 3456 7890 1234 5678 90",  # no such country
    "pay to de89370400440532013000",  # written in lower case
    "code ABDE89370400440532013000X",  # inside a word
])
def test_not_ibans(text):
    assert [e for e in found(text) if e[0] == "iban"] == []


def test_iban_checksum_directly():
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")


@pytest.mark.parametrize("value", [
    "192.168.1.10", "10.0.0.1", "8.8.8.8", "255.255.255.255", "2001:db8::1", "fe80::1ff:fe23:4567:890a",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
])
def test_ip_addresses(value):
    assert found(f"host {value} is up") == [("ip", value)]


def test_an_ip_at_the_end_of_a_sentence():
    assert found("The host is 10.1.2.3.") == [("ip", "10.1.2.3")]


@pytest.mark.parametrize("text", [
    "version 1.2.3.4", "Version: 1.2.3.4", "v1.2.3.4", "release 2.0.0.1", "build 4.1.7.9", "1.2.3.4.5",
    "999.1.1.1", "01.02.03.04", "Python 3.11.4", "std::vector<int>", "at 12:30:45", "mac 00:1A:2B:3C:4D:5E",
    "loopback ::1", "slice x[::2]", "Foo::Bar::baz",
])
def test_not_ip_addresses(text):
    assert [e for e in found(text) if e[0] == "ip"] == []


def test_only_the_chosen_entities_are_reported():
    text = "mail bob@example.com or call 415-555-2671 from 10.0.0.1"
    assert found(text, PiiDetector(["phone"])) == [("phone", "415-555-2671")]
    assert found(text, PiiDetector(["email", "ip"])) == [("email", "bob@example.com"), ("ip", "10.0.0.1")]


def test_non_ascii_text_keeps_positions():
    text = "Grüße von José — schreib an jose@example.es oder ruf +34 912 345 678 an. Über 10.0.0.1."
    assert found(text) == [("email", "jose@example.es"), ("ip", "10.0.0.1"), ("phone", "+34 912 345 678")]
