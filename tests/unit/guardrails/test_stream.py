"""The output scanner on streams: whatever the chunk boundaries, the client receives exactly what
the whole answer would have become, a block stops the stream before any part of the match is sent,
and restored placeholders come back whole even when cut between chunks."""

from __future__ import annotations

import random

from gateway.guardrails.engine import RequestGuard
from gateway.guardrails.events import Block

from .helpers import PROVIDER_KEY, guard_for, one_guard, run

ANSWER = (
    "Sure. Write to jane.roe@example.com or call +44 20 7946 0958 (or 415-555-2671). "
    "The card 4111 1111 1111 1111 and IBAN DE89 3704 0044 0532 0130 00 belong to her; "
    "the server is 192.168.10.20 and fe80::1ff:fe23:4567:890a, version 1.2.3.4 is fine. "
    f"Keys: sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5, {PROVIDER_KEY} and "
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U.\n"
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7\nQ2Fs+/=\n-----END RSA PRIVATE KEY-----\n"
    "Order 1234567812345678 shipped on 2024-01-15. Done."
)
MASK_ALL = """
guardrails:
  default: [pii, secrets]
  guards:
    - {name: pii, type: pii, on: output, action: mask}
    - {name: secrets, type: secrets, on: output, action: mask}
"""


def whole(guard: RequestGuard, text: str) -> str:
    verdict = run(guard.check_texts([text], "output"))
    assert verdict.blocked is None
    return verdict.texts[0]


def streamed(guard: RequestGuard, chunks: list[str]) -> tuple[str, Block | None]:
    scanner = guard.output_scanner()
    out = []
    for chunk in chunks:
        step = scanner.feed(chunk)
        out.append(step.text)
        if step.blocked is not None:
            return "".join(out), step.blocked
    step = run(scanner.finish())
    out.append(step.text)
    return "".join(out), step.blocked


def test_the_reference_masks_every_entity():
    masked = whole(guard_for(MASK_ALL), ANSWER)
    for placeholder in ("<EMAIL_1>", "<PHONE_1>", "<PHONE_2>", "<CARD_1>", "<IBAN_1>", "<IP_1>", "<IP_2>",
                        "<OPENAI_KEY_1>", "<PROVIDER_KEY_1>", "<JWT_1>", "<PRIVATE_KEY_1>"):
        assert placeholder in masked
    assert "version 1.2.3.4" in masked and "Order 1234567812345678" in masked and "2024-01-15" in masked


def test_every_split_point_gives_the_whole_answer_result():
    expected = whole(guard_for(MASK_ALL), ANSWER)
    for cut in range(len(ANSWER) + 1):
        got, blocked = streamed(guard_for(MASK_ALL), [ANSWER[:cut], ANSWER[cut:]])
        assert blocked is None
        assert got == expected, f"split at {cut}"


def test_one_character_per_chunk_and_random_splits():
    expected = whole(guard_for(MASK_ALL), ANSWER)
    assert streamed(guard_for(MASK_ALL), list(ANSWER))[0] == expected
    rng = random.Random(7)
    for _ in range(150):
        cuts = sorted(rng.sample(range(1, len(ANSWER)), rng.randint(2, 40)))
        chunks = [ANSWER[a:b] for a, b in zip([0, *cuts], [*cuts, len(ANSWER)], strict=True)]
        assert streamed(guard_for(MASK_ALL), chunks)[0] == expected, cuts


def test_text_is_released_as_it_becomes_safe():
    scanner = guard_for(MASK_ALL).output_scanner()
    first = scanner.feed("Hello there, how are").text
    assert first == "Hello there, how "  # held back: the last word, which could still grow into a key
    second = scanner.feed(" you today? Fine").text
    assert first + second == "Hello there, how are you today? "


def test_a_block_stops_the_stream_before_any_part_of_the_match():
    config = one_guard("secrets", action="block", on="output")
    secret = "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5"
    text = f"Here it is: {secret} and more text after it."
    for cut in range(len(text) + 1):
        got, blocked = streamed(guard_for(config), [text[:cut], text[cut:]])
        assert blocked is not None and blocked.guardrail == "g" and blocked.entity == "openai_key"
        assert "sk-" not in got and "4fQ9" not in got
        assert got == text[:len(got)]  # what was sent is the clean beginning


def test_a_stream_without_matches_passes_unchanged():
    text = "The quarterly numbers rose 12 percent in 2024; version 1.2.3.4 ships on 2024-06-01."
    for cut in range(len(text) + 1):
        got, blocked = streamed(guard_for(one_guard("pii", on="output")), [text[:cut], text[cut:]])
        assert (got, blocked) == (text, None)


def test_restored_placeholders_cut_between_chunks():
    config = one_guard("pii", extra="restore: true")
    guard = guard_for(config)
    verdict = run(guard.scan_input("chat", {"messages": [{"role": "user", "content": "I am bob@example.com"}]}))
    assert verdict.body["messages"][0]["content"] == "I am <EMAIL_1>"
    answer = "Hello <EMAIL_1>, noted <EMAIL_1>. <NOT_A_PLACEHOLDER> stays."
    expected = "Hello bob@example.com, noted bob@example.com. <NOT_A_PLACEHOLDER> stays."
    for cut in range(len(answer) + 1):
        guard = guard_for(config)
        run(guard.scan_input("chat", {"messages": [{"role": "user", "content": "I am bob@example.com"}]}))
        assert streamed(guard, [answer[:cut], answer[cut:]]) == (expected, None), cut


def test_restored_values_are_not_masked_again_and_new_ones_are():
    guard = guard_for(one_guard("pii", extra="restore: true"))
    run(guard.scan_input("chat", {"messages": [{"role": "user", "content": "mail bob@example.com"}]}))
    got, _ = streamed(guard, ["Sent to <EMAIL_1>, cc ", "eve@example.org."])
    assert got == "Sent to bob@example.com, cc <EMAIL_2>."


def test_remote_output_guards_hold_the_answer_until_the_end():
    config = """
guardrails:
  default: [pii, hook]
  guards:
    - {name: pii, type: pii, on: output, action: mask}
    - {name: hook, type: webhook, on: output, action: block, url: "http://127.0.0.1:9/check", on_error: allow}
"""
    guard = guard_for(config)
    scanner = guard.output_scanner()
    assert scanner.feed("mail me at bob@").text == ""
    assert scanner.feed("example.com please").text == ""
    step = run(scanner.finish())
    assert step.text == "mail me at <EMAIL_1> please"
    assert [(e.guardrail, e.action, e.entity) for e in guard.records()] == [
        ("pii", "mask", "email"), ("hook", "error", "unavailable")]
