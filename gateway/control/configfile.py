"""Edit ``config.yaml`` the way an operator would: a round trip through ruamel.yaml keeps its
comments, quotes, flow lists and key order; the file is replaced atomically (a temp file in the
same directory, renamed over it, with the old file's mode). A symlinked config (a re-pointed link,
a ConfigMap) has its target replaced, so the link stays."""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


class EditError(Exception):
    """The file cannot be edited as asked (it does not parse, or lacks what the edit needs)."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.indent(mapping=2, sequence=4, offset=2)  # "key:\n  - item", as config.example.yaml writes lists
    return yaml


def _load(text: str) -> CommentedMap:
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise EditError(f"the config file does not parse: {exc}") from None
    if not isinstance(doc, CommentedMap):
        raise EditError("the config file's top level is not a mapping")
    return doc


def _dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def _provider_keys(doc: CommentedMap, index: int) -> CommentedSeq:
    providers = doc.get("llm_providers")
    if not isinstance(providers, CommentedSeq) or index >= len(providers):
        raise EditError(f"llm_providers[{index}] is not in the file")
    keys = providers[index].get("api_keys") if isinstance(providers[index], CommentedMap) else None
    if not isinstance(keys, CommentedSeq):
        raise EditError(f"llm_providers[{index}].api_keys is not a list in the file")
    return keys


def raw_keys(text: str, index: int) -> list[str]:
    """The entries of ``llm_providers[index].api_keys`` as written (``${VAR}`` not interpolated)."""
    return [str(item) for item in _provider_keys(_load(text), index)]


def append_key(text: str, index: int, entry: str) -> str:
    """``text`` with ``entry`` appended to ``llm_providers[index].api_keys``, quoted as the entry
    before it is (double quotes for the first)."""
    doc = _load(text)
    keys = _provider_keys(doc, index)
    style = SingleQuotedScalarString if keys and isinstance(keys[-1], SingleQuotedScalarString) \
        else DoubleQuotedScalarString
    keys.append(style(entry))
    return _dump(doc)


def remove_keys(text: str, index: int, positions: set[int]) -> str:
    """``text`` without the entries at ``positions`` of ``llm_providers[index].api_keys``."""
    doc = _load(text)
    keys = _provider_keys(doc, index)
    for position in sorted(positions, reverse=True):
        del keys[position]
    return _dump(doc)


def prepend_client(text: str, entry: dict[str, Any]) -> str:
    """``text`` with ``entry`` first in ``api_keys`` (the list made, in block style, when there is none).
    Strings are written double-quoted except ``id``; lists and mappings inside the entry in flow style."""
    doc = _load(text)
    clients = doc.get("api_keys")
    if clients is None:
        clients = doc["api_keys"] = CommentedSeq()
    if not isinstance(clients, CommentedSeq):
        raise EditError("api_keys is not a list in the file")
    clients.fa.set_block_style()  # "api_keys: []" grows into a block list
    item = CommentedMap()
    for name, value in entry.items():
        if isinstance(value, list):
            value = CommentedSeq(DoubleQuotedScalarString(v) if isinstance(v, str) else v for v in value)
            value.fa.set_flow_style()
        elif isinstance(value, dict):
            value = CommentedMap(value)
            value.fa.set_flow_style()
        elif isinstance(value, str) and name != "id":
            value = DoubleQuotedScalarString(value)
        item[name] = value
    clients.insert(0, item)
    return _dump(doc)


def referenced_variables(text: str) -> set[str]:
    """Every ``${VAR}`` (or ``${VAR:-default}``) the text names."""
    return set(VARIABLE.findall(text))
