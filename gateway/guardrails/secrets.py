"""Keys and tokens: the shapes providers and platforms issue, and the gateway's own provider keys.

Every shape except private key blocks is a run of key characters (``TextView.tokens``): the
detector finds runs of at least 20 of them with one literal search (``w`` * 20, which skips
through prose a word at a time) and tries the shapes inside each run only.

- ``openai_key``: ``sk-``, ``sk-proj-``, ``sk-svcacct-``, ``sk-admin-`` and 20 or more key characters;
- ``anthropic_key``: ``sk-ant-`` and 20 or more;
- ``google_key``: ``AIza`` and 35;
- ``aws_access_key``: ``AKIA`` / ``ASIA`` / ``ABIA`` / ``ACCA`` and 16 upper-case letters or digits;
- ``aws_secret_key``: 40 characters of base64 (both cases and a digit) after the word ``secret`` or an
  access key id (within 128 characters before it): alone, such a run could be any hash;
- ``github_token``: ``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_`` and 36 or more, ``github_pat_`` and 22;
- ``jwt``: three dot-separated base64url parts, the first two starting ``eyJ`` (encoded JSON);
- ``private_key``: a PEM ``-----BEGIN ... PRIVATE KEY-----`` block to its END line (or, cut
  short, to the end of its base64);
- ``provider_key``: any key of the gateway's configured providers (at least 8 characters).

OpenAI and Anthropic keys must hold a digit and a letter after the prefix (``sk-this-is-a-slug``
is not a key); every shape must start where a word starts (``task-...`` holds no ``sk-`` key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .base import TOKEN_CHARS, Match, Tails, TextView, hold_of

_SHAPES = re.compile(
    r"(?P<anthropic_key>(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_\-]{20,})"
    r"|(?P<openai_key>(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,})"
    r"|(?P<google_key>(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-]))"
    r"|(?P<aws_access_key>(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9]))"
    r"|(?P<github_token>(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})"
    r"(?![A-Za-z0-9_]))"
    r"|(?P<jwt>(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
)
_SHAPE_STARTS = re.compile(rb"sk-|AIza|A[KSB]IA|ACCA|gh[pousr]_|github_pat_|eyJ")  # on TextView.raw: a shape can start
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_CONTEXT = re.compile(r"(?i)secret|(?-i:(?:AKIA|ASIA)[0-9A-Z]{16})")
_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY-----(?:[^\x00]{0,16384}?"
                  r"-----END (?:[A-Z0-9]+ ){0,4}PRIVATE KEY-----|[A-Za-z0-9+/=\s:,\-]{0,16384})")
_NEEDS_DIGIT_AND_LETTER = frozenset({"openai_key", "anthropic_key"})
_RUN = 20  # the shortest shape (AKIA + 16)
_TOKEN_TAIL = TOKEN_CHARS.decode()
_PEM_TAIL = "-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
MAX_TOKEN = 4096  # the longest token a stream holds back while it grows (a JWT can be long)
MIN_PROVIDER_KEY = 8


class ProviderKeys:
    """The gateway's own provider keys, grouped by their first four characters so a run is searched
    once per group rather than once per key."""

    def __init__(self, secrets: Iterable[str]) -> None:
        keys = sorted({s for s in secrets if len(s) >= MIN_PROVIDER_KEY}, key=len, reverse=True)
        self.tokens: dict[str, tuple[str, ...]] = {}
        odd: list[str] = []
        for key in keys:
            if key.isascii() and all(ord(ch) in TOKEN_CHARS for ch in key):
                self.tokens[key[:4]] = (*self.tokens.get(key[:4], ()), key)
            else:
                odd.append(key)
        self.odd = tuple(odd)  # keys with other characters: searched in the whole text
        # where a provider key or a shape can start, on TextView.raw: a run without one is skipped at once
        starts = [re.escape(prefix.encode()) for prefix in self.tokens] + [_SHAPE_STARTS.pattern]
        self.starts = re.compile(b"|".join(starts))
        self.shortest = min((len(k) for k in keys), default=_RUN)
        self.longest = max((len(k) for k in keys), default=0)

    def in_run(self, text: str, begin: int, end: int) -> list[Match]:
        run = text[begin:end]
        found: list[Match] = []
        for prefix, keys in self.tokens.items():
            if prefix in run:
                found += _every(run, keys, begin)
        return found

    def in_text(self, text: str, start: int) -> list[Match]:
        return _every(text[start:], self.odd, start) if self.odd else []


def _every(text: str, keys: Iterable[str], offset: int) -> list[Match]:
    found: list[Match] = []
    for key in keys:
        at = text.find(key)
        while at >= 0:
            found.append(Match(offset + at, offset + at + len(key), "provider_key"))
            at = text.find(key, at + len(key))
    return found


class SecretsDetector:
    """The ``secrets`` guard's detector: the chosen shapes, and always the provider keys."""

    def __init__(self, entities: Iterable[str], provider_keys: ProviderKeys) -> None:
        self.entities = frozenset(entities)
        self._keys = provider_keys
        self._run = min(_RUN, provider_keys.shortest)
        self._needle = b"w" * self._run
        tails = [(_TOKEN_TAIL, max(MAX_TOKEN, provider_keys.longest))]
        if "private_key" in self.entities:
            tails.append((_PEM_TAIL, 48))
        self.tails: Tails = tuple(tails)

    def hold(self, text: str) -> int:
        return hold_of(text, self.tails)

    def find(self, view: TextView, start: int) -> list[Match]:
        found: list[Match] = []
        tokens, text = view.tokens, view.text
        at = tokens.find(self._needle, start)
        while at >= 0:
            end = tokens.find(b" ", at + self._run)
            end = len(text) if end < 0 else end
            found += self._in_run(text, view.raw, at, end)
            at = tokens.find(self._needle, end)
        found += self._keys.in_text(text, start)
        if "private_key" in self.entities and b"-----BEGIN" in view.raw:
            found += _private_keys(text, view.raw, start)
        return found

    def _in_run(self, text: str, raw: bytes, begin: int, end: int) -> list[Match]:
        found: list[Match] = []
        if self._keys.starts.search(raw, begin, end):
            found = self._keys.in_run(text, begin, end)  # a provider key is reported as one, whatever its shape
            for m in _SHAPES.finditer(text, begin, end):
                entity = m.lastgroup or ""
                if entity in self.entities and (entity not in _NEEDS_DIGIT_AND_LETTER or _mixed(m.group())) and not any(
                        k.start < m.end() and m.start() < k.end for k in found):
                    found.append(Match(m.start(), m.end(), entity))
        if "aws_secret_key" in self.entities and end - begin >= 40 and _AWS_SECRET_CONTEXT.search(
                text, max(0, begin - 128), end):
            for m in _AWS_SECRET.finditer(text, begin, end):
                value = m.group()
                if _mixed(value) and not value.islower() and not value.isupper() and _AWS_SECRET_CONTEXT.search(
                        text, max(0, m.start() - 128), m.start()):
                    found.append(Match(m.start(), m.end(), "aws_secret_key"))
        return found


def _mixed(value: str) -> bool:
    """Whether a candidate looks random: a digit and a letter after its prefix."""
    body = value[3:]
    return any(ch.isdigit() for ch in body) and any(ch.isalpha() for ch in body)


def _private_keys(text: str, raw: bytes, start: int) -> list[Match]:
    found: list[Match] = []
    at = raw.find(b"-----BEGIN", start)
    while at >= 0:
        m = _PEM.match(text, at)
        if m is not None:
            found.append(Match(m.start(), m.end(), "private_key"))
        at = raw.find(b"-----BEGIN", m.end() if m is not None else at + 1)
    return found
