"""``guardrails:`` in config.yaml: the shape, the selection by alias and client, and every mistake
reported with its file:line."""

from __future__ import annotations

import pytest

from gateway.config.loader import ConfigError
from gateway.guardrails.remote import WebhookCheck

from .helpers import line, snapshot

FULL = """
model_aliases:
  fast: {targets: [openai-prod:gpt-4o], guardrails: [no-orders]}
  plain: openai-prod:gpt-4o
api_keys:
  - {id: team-a, key: client-key-aaaa, guardrails: [hook, pii]}
guardrails:
  default: [pii, secrets]
  guards:
    - {name: pii, type: pii, on: input, action: mask, restore: true, entities: [email, phone]}
    - {name: secrets, type: secrets, on: both, action: block}
    - name: no-orders
      type: regex
      on: both
      action: mask
      patterns:
        - {name: order_id, pattern: 'ORD-\\d{6}'}
        - {name: project, pattern: 'project (?:apollo|gemini)', ignore_case: true}
    - {name: mod, type: moderation, on: input, action: block, provider: openai-prod, categories: [violence]}
    - {name: hook, type: webhook, on: output, action: log, url: "https://hooks.example/check",
       headers: {X-Token: "${HOOK_TOKEN}"}, timeout_s: 1.5, on_error: allow}
"""


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        snapshot(text, env)
    return [issue.render("c.yaml") for issue in info.value.issues]


def test_the_full_shape_loads_and_selects_by_alias_and_client():
    snap = snapshot(FULL, {"HOOK_TOKEN": "t0k"})
    g = snap.guardrails
    assert list(g.guards) == ["pii", "secrets", "no-orders", "mod", "hook"]
    assert g.names_for(None, None) == ("pii", "secrets")
    assert g.names_for("fast", None) == ("pii", "secrets", "no-orders")
    assert g.names_for("plain", None) == ("pii", "secrets")
    client = next(iter(snap.clients.values()))
    assert client.guardrails == ("hook", "pii")
    assert g.names_for("fast", client) == ("pii", "secrets", "no-orders", "hook")
    hook = g.guards["hook"].remote
    assert isinstance(hook, WebhookCheck) and dict(hook.headers) == {"X-Token": "t0k"}


def test_no_guardrails_means_no_guard():
    guard = snapshot("").guardrails.for_request("fast", None)
    assert not guard.active and not guard.guards_input and not guard.guards_output


def test_a_change_to_the_guards_changes_the_snapshot_version():
    assert snapshot(FULL, {"HOOK_TOKEN": "a"}).version != snapshot(FULL.replace("ORD-", "ORX-"),
                                                                     {"HOOK_TOKEN": "a"}).version


def test_unknown_names_are_errors_where_they_are_written():
    text = """
model_aliases:
  fast: {targets: [openai-prod:gpt-4o], guardrails: [nope]}
api_keys:
  - {key: client-key-aaaa, guardrails: [pii, missing]}
guardrails:
  default: [pii, ghost]
  guards:
    - {name: pii, type: pii, on: input, action: mask}
"""
    defined = "is not defined under guardrails.guards (defined: pii)"
    assert errors(text) == [
        f"c.yaml:{line(text, 'default:')}: guardrails.default[1]: guardrail 'ghost' {defined}",
        f"c.yaml:{line(text, 'fast:')}: model_aliases.fast.guardrails[0]: guardrail 'nope' {defined}",
        f"c.yaml:{line(text, '- {key')}: api_keys[0].guardrails[1]: guardrail 'missing' {defined}",
    ]


def test_duplicate_names_and_unknown_types():
    text = """
guardrails:
  guards:
    - {name: a, type: pii, on: input, action: mask}
    - {name: a, type: secrets, on: input, action: block}
    - {name: b, type: antivirus, on: input, action: block}
"""
    assert errors(text) == [f"c.yaml:{line(text, '{name: b')}: guardrails.guards[2]: type must be one of 'pii', "
                            "'secrets', 'regex', 'moderation' or 'webhook'"]
    text = text.replace("antivirus", "pii")
    assert errors(text) == [f"c.yaml:{line(text, '{name: a, type: s')}: guardrails.guards[1].name: guardrail "
                            "name 'a' is used twice"]


@pytest.mark.parametrize(("guard", "expected"), [
    ("{name: a, type: pii, on: input, action: block, restore: true}",
     "c.yaml:9: guardrails.guards[0]: Value error, restore: true needs action: mask (it puts back what was masked)"),
    ("{name: a, type: pii, on: output, action: mask, restore: true}",
     "c.yaml:9: guardrails.guards[0]: Value error, restore: true puts back what was masked in the request; with on: "
     "output nothing is"),
    ("{name: a, type: pii, on: inbound, action: mask}",
     "c.yaml:9: guardrails.guards[0].on: must be one of 'input', 'output' or 'both'"),
    ("{name: a, type: pii, on: input, action: mask, entities: [email, ssn]}",
     "c.yaml:9: guardrails.guards[0].entities[1]: must be one of 'email', 'phone', 'card', 'iban' or 'ip'"),
    ("{name: a, type: moderation, on: input, action: mask, provider: openai-prod}",
     "c.yaml:9: guardrails.guards[0].action: must be one of 'block' or 'log'"),
    ("{name: a, type: webhook, on: input, action: block, url: ftp://x}",
     "c.yaml:9: guardrails.guards[0].url: Value error, must be an http:// or https:// URL"),
    ("{name: 'has space', type: pii, on: input, action: mask}",
     "c.yaml:9: guardrails.guards[0].name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}$'"),
])
def test_guard_fields_are_checked(guard, expected):
    text = f"guardrails:\n  guards:\n    - {guard}\n"
    assert errors(text) == [expected.replace("c.yaml:9:", f"c.yaml:{line(text, '- {name')}:")]


def test_a_moderation_guard_needs_a_provider_that_serves_moderations():
    text = """
guardrails:
  guards:
    - {name: m, type: moderation, on: input, action: block, provider: nobody}
"""
    assert errors(text) == [f"c.yaml:{line(text, '{name: m')}: guardrails.guards[0].provider: provider 'nobody' is "
                            "not configured (llm_providers ids: openai-prod)"]
    chat_only = """
llm_providers:
  - {id: chatty, type: openai, base_url: "http://127.0.0.1:9/v1", api_keys: [k-123456789], endpoints: [chat]}
"""
    with pytest.raises(ConfigError) as info:
        snapshot("guardrails:\n  guards:\n    - {name: m, type: moderation, on: input, action: block, "
                 "provider: chatty}\n", providers=chat_only)
    assert [i.render("c.yaml") for i in info.value.issues] == [
        "c.yaml:6: guardrails.guards[0].provider: provider 'chatty' does not serve moderations (its type or its "
        "endpoints)"]


def test_regex_patterns_are_compiled_and_checked_at_load():
    text = """
guardrails:
  guards:
    - name: r
      type: regex
      on: input
      action: mask
      patterns:
        - {name: ok, pattern: 'ORD-\\d+'}
        - {name: broken, pattern: 'ORD-(\\d+'}
        - {name: slow, pattern: '(a+)+$'}
        - {name: empty, pattern: 'x*'}
        - {name: ok, pattern: 'y'}
"""
    found = errors(text)
    assert found[0] == (f"c.yaml:{line(text, '{name: broken')}: guardrails.guards[0].patterns[1]: pattern does not "
                        "compile: missing ), unterminated subpattern at position 4")
    assert found[1].startswith(f"c.yaml:{line(text, '{name: slow')}: guardrails.guards[0].patterns[2]: pattern "
                               "nests a repeat of varying length inside an unbounded one")
    assert found[2] == (f"c.yaml:{line(text, '{name: empty')}: guardrails.guards[0].patterns[3]: pattern matches "
                        "the empty text; it would match everywhere")
    assert len(found) == 3
    text = "\n".join(row for row in text.splitlines() if "broken" not in row and "slow" not in row
                     and "empty" not in row) + "\n"
    assert errors(text) == [f"c.yaml:{line(text, 'patterns:')}: guardrails.guards[0].patterns: Value error, "
                            "pattern name 'ok' is listed twice"]


def test_guardrails_as_a_plain_list_is_explained():
    text = "guardrails:\n  - {name: a, type: pii, on: input, action: mask}\n"
    assert errors(text) == [f"c.yaml:{line(text, 'guardrails:')}: guardrails: guardrails is a mapping: "
                            "{guards: [...], default: [...]} (the named guards under 'guards')"]


def test_a_webhook_header_may_not_hold_a_line_break_and_the_value_is_never_shown():
    text = """
guardrails:
  guards:
    - {name: h, type: webhook, on: input, action: block, url: "http://x.test/", headers: {X-Token: "${T}"}}
"""
    found = errors(text, {"T": "secret-value\r\nInjected: 1"})
    assert found == [f"c.yaml:{line(text, '{name: h')}: guardrails.guards[0].headers: Value error, the value of "
                     "header 'X-Token' holds a line break"]
    assert "secret-value" not in found[0]
