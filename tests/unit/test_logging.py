"""The log formatter's last line of defence: anything shaped like a key is redacted."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.observability.logging import JsonFormatter, redact


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcSECRET123",
    "{'authorization': 'Bearer abcSECRET123'}",
    "api-key: abcSECRET123",
    "x-api-key=abcSECRET123",
    "token sk-abcSECRET123 used",
    "Bearer abcSECRET123",
    # any case: the quick check that skips the regex for plain text folds case as the regex does
    "AUTHORIZATION: BEARER abcSECRET123",
    "Api_Key: abcSECRET123",
    "SK-abcSECRET123",
    "\u017fk-abcSECRET123",  # long s: the regex's IGNORECASE takes it for an s
])
def test_redact_removes_the_secret(text):
    assert "abcSECRET123" not in redact(text)


@pytest.mark.parametrize("text", ["fake-gpt-4o-mini", "provider#1", "chat", "0123456789abcdef", ""])
def test_redact_leaves_plain_text_as_it_is(text):
    assert redact(text) == text


def test_structured_extras_are_redacted_too():
    record = logging.makeLogRecord({"msg": "reload", "errors": ["x: Bearer abcSECRET123", {"k": "sk-abcSECRET123"}],
                                    "key": "provider#1"})
    line = JsonFormatter().format(record)
    assert "abcSECRET123" not in line
    assert json.loads(line)["key"] == "provider#1"
