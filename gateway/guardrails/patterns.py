"""What an operator's regular expression can cost, checked when the config is loaded.

Python's ``re`` has no timeout, so a pattern that backtracks exponentially (``(a+)+$`` on a long
run of ``a``) would stall a worker. The shape that does so is refused at load: a repeat of
varying length inside an unbounded repeat (``(a+)+``, ``(\\w+\\s?)*``, ``(a{1,3})+``), unless the
outer one is possessive (``(?:...)++``) or atomic (``(?>...)``), or the inner one possessive
(``a++``): those never backtrack. Overlapping alternatives under a repeat (``(a|ab)*``) are not
detected; texts are scanned in bounded windows (``custom.py``) so even a slow pattern meets a
bounded input.

The same parse gives what streaming needs: the characters a match can be made of (``tail_class``)
so a stream holds back only a trailing run of them, and the longest match (``max_width``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

# The parser behind ``re`` (a private module: used only to analyse patterns, never to match).
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")

MAXREPEAT: int = _constants.MAXREPEAT
_REPEATS = {_constants.MAX_REPEAT, _constants.MIN_REPEAT}
_POSSESSIVE = getattr(_constants, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(_constants, "ATOMIC_GROUP", None)
_UNBOUNDED = 1000  # a repeat allowing more than this many rounds counts as unbounded

_CATEGORY_CLASS = {
    _constants.CATEGORY_DIGIT: r"\d",
    _constants.CATEGORY_WORD: r"\w",
    _constants.CATEGORY_SPACE: r"\s",
}


class PatternProblem(ValueError):
    """A pattern that does not compile, or one that can backtrack exponentially."""


def check_pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """The compiled pattern, or ``PatternProblem`` saying what is wrong (with the position)."""
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise PatternProblem(f"does not compile: {exc.msg}{where}") from None
    if compiled.match("") is not None:
        raise PatternProblem("matches the empty text; it would match everywhere")
    if _nested_unbounded(_parser.parse(pattern), inside_unbounded=False):
        raise PatternProblem("nests a repeat of varying length inside an unbounded one ((a+)+, (x{1,3})*): it can "
                             "take exponential time on some texts; make the inner or outer repeat possessive (a++, "
                             "(?:...)*+) or atomic ((?>...))")
    return compiled


def _items(parsed: Any) -> Iterable[tuple[Any, Any]]:
    return list(parsed.data if hasattr(parsed, "data") else parsed)


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns under one node of the parse."""
    if op in _REPEATS or op == _POSSESSIVE:
        return [av[2]]
    if op == _constants.SUBPATTERN:
        return [av[-1]]
    if op == _constants.BRANCH:
        return list(av[1])
    if op in (_constants.ASSERT, _constants.ASSERT_NOT):
        return [av[1]]
    if op == _ATOMIC:
        return [av]
    if op == _constants.GROUPREF_EXISTS:
        return [x for x in av[1:] if x is not None]
    return []


def _nested_unbounded(parsed: Any, inside_unbounded: bool) -> bool:
    for op, av in _items(parsed):
        if op in _REPEATS:
            unbounded = av[1] == MAXREPEAT or av[1] > _UNBOUNDED
            if inside_unbounded and av[0] != av[1]:  # a repeat of varying length inside an unbounded one
                return True
            if _nested_unbounded(av[2], inside_unbounded or unbounded):
                return True
        elif op in (_POSSESSIVE, _ATOMIC):  # never backtracks into itself: its inside is checked alone
            if any(_nested_unbounded(child, False) for child in _children(op, av)):
                return True
        elif any(_nested_unbounded(child, inside_unbounded) for child in _children(op, av)):
            return True
    return False


def max_width(pattern: str) -> int:
    """The longest text the pattern can match (``MAXREPEAT`` when unbounded)."""
    high: int = _parser.parse(pattern).getwidth()[1]
    return high


def tail_class(pattern: str) -> str | None:
    """A character class (``[...]`` body) holding every character a match of ``pattern`` can contain,
    lookarounds included; None when that is nearly every character (``.``, ``[^x]``, ``\\S``)."""
    parts: set[str] = set()
    if not _collect(_parser.parse(pattern), parts):
        return None
    return "".join(sorted(parts))


def _collect(parsed: Any, parts: set[str]) -> bool:
    for op, av in _items(parsed):
        if op == _constants.LITERAL:
            parts.add(re.escape(chr(av)))
        elif op == _constants.IN:
            if not _collect_set(av, parts):
                return False
        elif op in (_constants.ANY, _constants.NOT_LITERAL):
            return False
        elif op in (_constants.AT, _constants.GROUPREF):
            continue  # anchors match no character; a backreference repeats characters already collected
        elif not all(_collect(child, parts) for child in _children(op, av)):
            return False
    return True


def _collect_set(items: Any, parts: set[str]) -> bool:
    for op, av in items:
        if op == _constants.NEGATE:
            return False
        if op == _constants.LITERAL:
            parts.add(re.escape(chr(av)))
        elif op == _constants.RANGE:
            parts.add(f"{re.escape(chr(av[0]))}-{re.escape(chr(av[1]))}")
        elif op == _constants.CATEGORY:
            known = _CATEGORY_CLASS.get(av)
            if known is None:
                return False  # \D, \W, \S: nearly everything
            parts.add(known)
        else:
            return False
    return True
