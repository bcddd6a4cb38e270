"""Field-by-field comparison of what was sent or answered with what a conformance case expects.

Objects must have exactly the expected keys: a key the case lacks is an invented field, a key
the case has and the actual lacks is a lost one. Arrays must have the expected length. Leaves
compare equal (``1`` and ``1.0`` are equal, ``True`` and ``1`` are not). Where a value cannot be
known in advance, the case writes a matcher instead:

==================  ===========================================================================
``"$any"``          anything, but the key must be there
``"$absent"``       the key must not be there (in objects only)
``"$string"``       any string (``"$int"``, ``"$number"``, ``"$bool"`` likewise)
``"$positive"``     an integer above 0 (an estimate the case does not pin down)
``"$re:PATTERN"``   a string the regular expression matches whole
``{"$json": X}``    a string holding JSON that compares with ``X`` (matchers allowed inside)
``"$$text"``        the literal string ``$text``
==================  ===========================================================================
"""

from __future__ import annotations

import json
import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {"$string": (str,), "$int": (int,), "$number": (int, float), "$bool": (bool,)}


def differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Every difference between ``actual`` and ``expected``, one line each (empty: they agree)."""
    if isinstance(expected, str) and expected.startswith("$"):
        return _matcher(expected, actual, where)
    if isinstance(expected, dict) and set(expected) == {"$json"}:
        return _json_string(expected["$json"], actual, where)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '.'}: expected an object, got {_show(actual)}"]
        return _objects(expected, actual, where)
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where or '.'}: expected an array, got {_show(actual)}"]
        out = []
        if len(expected) != len(actual):
            out.append(f"{where or '.'}: expected {len(expected)} items, got {len(actual)}: {_show(actual)}")
        for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
            out += differences(want, got, f"{where}[{i}]")
        return out
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        same = isinstance(actual, (int, float)) and not isinstance(actual, bool) and expected == actual
    else:  # strings, booleans, null: the same type and value
        same = type(expected) is type(actual) and expected == actual
    return [] if same else [f"{where or '.'}: expected {_show(expected)}, got {_show(actual)}"]


def _objects(expected: dict[str, Any], actual: dict[str, Any], where: str) -> list[str]:
    out = []
    for key, want in expected.items():
        at = f"{where}.{key}"
        if want == "$absent":
            if key in actual:
                out.append(f"{at}: must not be there, got {_show(actual[key])}")
        elif key not in actual:
            out.append(f"{at}: missing (lost)")
        else:
            out += differences(want, actual[key], at)
    for key in actual:
        if key not in expected:
            out.append(f"{where}.{key}: not expected (invented): {_show(actual[key])}")
    return out


def _matcher(expected: str, actual: Any, where: str) -> list[str]:
    if expected.startswith("$$"):
        return [] if actual == expected[1:] else [f"{where}: expected {expected[1:]!r}, got {_show(actual)}"]
    if expected == "$any":
        return []
    if expected == "$positive":
        ok = isinstance(actual, int) and not isinstance(actual, bool) and actual > 0
        return [] if ok else [f"{where}: expected an integer above 0, got {_show(actual)}"]
    if expected in _TYPES:
        ok = isinstance(actual, _TYPES[expected]) and (expected == "$bool" or not isinstance(actual, bool))
        return [] if ok else [f"{where}: expected {expected[1:]}, got {_show(actual)}"]
    if expected.startswith("$re:"):
        ok = isinstance(actual, str) and re.fullmatch(expected[4:], actual, re.DOTALL) is not None
        return [] if ok else [f"{where}: expected a match of /{expected[4:]}/, got {_show(actual)}"]
    raise ValueError(f"{where}: unknown matcher {expected!r} (write '$${expected[1:]}' for the literal string)")


def _json_string(expected: Any, actual: Any, where: str) -> list[str]:
    if not isinstance(actual, str):
        return [f"{where}: expected a JSON string, got {_show(actual)}"]
    try:
        parsed = json.loads(actual)
    except ValueError:
        return [f"{where}: expected a JSON string, got {_show(actual)}"]
    return differences(expected, parsed, where + "<json>")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 300 else text[:300] + "…"
