"""Checks on the composed YAML node graph, made before anything is built from it.

PyYAML composes an alias as a second reference to the anchored node, so a few lines can
describe a document that expands to billions of nodes (the "billion laughs"), or a node that
contains itself; and a mapping may repeat a key, the later value silently winning. These
checks visit each distinct node once, so they take time and memory in proportion to the file,
whatever its aliases expand to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

# Nodes that aliases may add to the document once expanded. A config that shares a `limits`
# block between ten thousand clients adds ~30,000; a bomb adds millions.
MAX_ALIAS_EXPANSION = 100_000
MERGE_TAG = "tag:yaml.org,2002:merge"

NodePath = tuple[Any, ...]


@dataclass(frozen=True)
class NodeIssue:
    path: NodePath
    message: str
    line: int | None


@dataclass
class _Walk:
    limit: int
    sizes: dict[int, int] = field(default_factory=dict)  # id(node) -> expanded size, capped at limit + 1
    open: set[int] = field(default_factory=set)  # nodes being visited: meeting one again is a cycle
    issues: list[NodeIssue] = field(default_factory=list)
    cycle: NodeIssue | None = None


def check_nodes(root: yaml.Node, max_alias_expansion: int = MAX_ALIAS_EXPANSION) -> list[NodeIssue]:
    """Duplicate keys at any depth, self-containing aliases, and alias expansion past the budget."""
    walk = _Walk(limit=_cap_for(root, max_alias_expansion))
    expanded = _visit(root, (), walk)
    if walk.cycle is not None:
        return [walk.cycle]
    added = expanded - len(walk.sizes)
    if added > max_alias_expansion:
        walk.issues.append(NodeIssue((), f"YAML aliases expand this document by more than {max_alias_expansion:,} "
                                         "nodes (an alias bomb?); refused", None))
    return sorted(walk.issues, key=lambda issue: issue.line or 0)


def _cap_for(root: yaml.Node, max_alias_expansion: int) -> int:
    # an expanded size past (distinct nodes + budget) is refused whatever its exact value;
    # capping keeps the numbers small for a bomb of 10^100 nodes
    return max_alias_expansion + _distinct_count(root) + 1


def _distinct_count(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(_children(node))
    return len(seen)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _visit(node: yaml.Node, path: NodePath, walk: _Walk) -> int:
    key = id(node)
    if key in walk.sizes:
        return walk.sizes[key]
    if key in walk.open:
        if walk.cycle is None:
            walk.cycle = NodeIssue(path, "an alias refers to a node that contains it (a recursive document); "
                                         "refused", node.start_mark.line + 1)
        return 1
    walk.open.add(key)
    size = 1
    if isinstance(node, yaml.MappingNode):
        _check_duplicates(node, path, walk)
        for key_node, value_node in node.value:
            size += _visit(key_node, path, walk)
            size += _visit(value_node, path + (_key_name(key_node),), walk)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            size += _visit(item, path + (index,), walk)
    walk.open.discard(key)
    walk.sizes[key] = min(size, walk.limit)
    return walk.sizes[key]


def _check_duplicates(node: yaml.MappingNode, path: NodePath, walk: _Walk) -> None:
    first: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
            continue
        line = key_node.start_mark.line + 1
        name = (key_node.tag, key_node.value)
        if name in first:
            walk.issues.append(NodeIssue(path + (key_node.value,),
                                         f"duplicate key '{key_node.value}' (first at line {first[name]})", line))
        else:
            first[name] = line


def _key_name(key_node: yaml.Node) -> Any:
    return key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
