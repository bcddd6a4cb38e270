"""The conformance comparison finds what a translation loses, invents or changes (and nothing else)."""

from __future__ import annotations

import pytest

from tests.conformance.compare import differences
from tests.conformance.replay import sse_bytes
from tests.conformance.test_conformance import parse_sse


def test_equal_values_agree() -> None:
    value = {"a": [1, {"b": "x", "c": None}], "d": True, "e": 1.5}
    assert differences(value, value) == []
    assert differences({"n": 1}, {"n": 1.0}) == []  # JSON numbers


def test_lost_invented_and_changed_fields_are_named() -> None:
    found = differences({"a": 1, "b": {"c": "x"}}, {"b": {"c": "y", "d": 2}, "e": 3})
    assert found == ['.a: missing (lost)', '.b.c: expected "x", got "y"', ".b.d: not expected (invented): 2",
                     ".e: not expected (invented): 3"]


def test_types_and_lengths_count() -> None:
    assert differences({"f": True}, {"f": 1}) == [".f: expected true, got 1"]
    assert differences({"f": 1}, {"f": True}) == [".f: expected 1, got true"]
    assert differences({"s": "1"}, {"s": 1}) == ['.s: expected "1", got 1']
    assert differences([1, 2], [1]) == [".: expected 2 items, got 1: [1]"]


def test_matchers() -> None:
    assert differences({"id": "$re:msg_[a-z0-9]+", "t": "$int", "x": "$any", "gone": "$absent"},
                       {"id": "msg_ab12", "t": 5, "x": [1]}) == []
    assert differences({"gone": "$absent"}, {"gone": 1}) == [".gone: must not be there, got 1"]
    assert differences({"t": "$int"}, {"t": True}) == [".t: expected int, got true"]
    assert differences({"id": "$re:msg_[0-9]+"}, {"id": "msg_x1"}) != []
    assert differences({"args": {"$json": {"city": "Paris"}}}, {"args": '{"city":  "Paris"}'}) == []
    assert differences({"args": {"$json": {"city": "Paris"}}}, {"args": '{"city": "Rome"}'}) != []
    assert differences("$$literal", "$literal") == []
    assert differences("$positive", 3) == [] and differences("$positive", 0) != []
    with pytest.raises(ValueError):
        differences("$nope", 1)


def test_sse_written_and_read_back() -> None:
    events = [{"event": "message_start", "data": {"type": "message_start"}}, {"data": "[DONE]"},
              {"data": {"candidates": []}, "crlf": True}]
    raw = sse_bytes(events).decode()
    assert raw.endswith('data: {"candidates": []}\r\n\r\n')
    assert parse_sse(raw) == [{"event": "message_start", "data": {"type": "message_start"}}, {"data": "[DONE]"},
                              {"data": {"candidates": []}}]
