"""The regex guard: operator patterns as entities, bounded scan windows, texts never joined into a
match, streams held back only as far as a pattern can reach; and the action counter's series."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from gateway.guardrails.base import TextView
from gateway.guardrails.custom import WINDOW, RegexDetector
from gateway.observability.metrics import count_guardrail_action

from .helpers import guard_for, run

ORDERS = """
guardrails:
  default: [orders]
  guards:
    - name: orders
      type: regex
      on: both
      action: mask
      restore: true
      patterns:
        - {name: order_id, pattern: 'ORD-[0-9]{6}'}
        - {name: project, pattern: 'project (?:apollo|gemini)', ignore_case: true}
"""


def test_patterns_mask_with_their_names():
    guard = guard_for(ORDERS)
    verdict = run(guard.check_texts(["Ship ORD-123456 and ORD-654321 for Project Apollo; ORD-12 is short"], "input"))
    assert verdict.texts == ("Ship <ORDER_ID_1> and <ORDER_ID_2> for <PROJECT_1>; ORD-12 is short",)
    back = run(guard.check_texts(["Done: <ORDER_ID_2>"], "output"))
    assert back.texts == ("Done: ORD-654321",)


def test_a_match_never_joins_two_texts():
    guard = guard_for(ORDERS)
    verdict = run(guard.check_texts(["the id is ORD-", "123456 as said", "ORD-000001"], "input"))
    assert verdict.texts == ("the id is ORD-", "123456 as said", "<ORDER_ID_1>")


def test_matches_are_found_across_scan_windows_once():
    detector = RegexDetector([("order_id", "ORD-[0-9]{6}", False)], 256)
    text = "x" * (WINDOW - 5) + "ORD-111111" + "y" * WINDOW + "ORD-222222" + "z" * 10
    found = [(m.entity, text[m.start:m.end]) for m in detector.find(TextView(text), 0)]
    assert found == [("order_id", "ORD-111111"), ("order_id", "ORD-222222")]


def test_a_stream_holds_back_only_what_a_pattern_can_still_become():
    scanner = guard_for(ORDERS).output_scanner()
    first = scanner.feed("Your order is ORD-12").text
    assert first == "Your order is "  # "ORD-12" could still become an order id; "is " cannot
    rest = scanner.feed("3456 is on its way").text + run(scanner.finish()).text
    assert first + rest == "Your order is <ORDER_ID_1> is on its way"


def test_a_pattern_that_can_hold_any_character_holds_its_longest_match():
    config = """
guardrails:
  default: [r]
  guards:
    - {name: r, type: regex, on: output, action: mask, max_match_chars: 20,
       patterns: [{name: quoted, pattern: '"[^"]{1,18}"'}]}
"""
    scanner = guard_for(config).output_scanner()
    text = 'He said "top secret thing" and then more words follow here'
    out = scanner.feed(text).text
    assert out == 'He said <QUOTED_1> and then more words follow here'[:-20]  # the last 20 could start a match
    assert out + run(scanner.finish()).text == 'He said <QUOTED_1> and then more words follow here'


def test_the_action_counter_is_exposed_with_guard_and_action_labels():
    count_guardrail_action("pii-test", "mask", 3)
    text = generate_latest(REGISTRY).decode()
    assert 'gateway_guardrail_actions_total{action="mask",guardrail="pii-test"} 3.0' in text
