"""JSON Schema (what OpenAI tools and ``response_format`` carry) → the OpenAPI subset Gemini's ``Schema`` takes.

Gemini refuses fields it does not know (``additionalProperties``, ``$schema``, ``$ref``, ``strict``, …) with a
400, so the schema is rebuilt from the fields it accepts: ``$ref``s into ``$defs``/``definitions`` are inlined
(recursion is cut at ``MAX_DEPTH``), ``["string", "null"]`` and ``anyOf: [X, {"type": "null"}]`` become
``nullable``, ``const`` becomes a one-value ``enum``, ``allOf`` is merged, formats Gemini does not know are
dropped, and ``required`` keeps only properties that exist.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 24
_KEPT = ("title", "description", "nullable", "maxItems", "minItems", "minProperties", "maxProperties",
         "minLength", "maxLength", "pattern", "example", "default", "minimum", "maximum", "propertyOrdering")
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
_TYPES = {"string", "number", "integer", "boolean", "array", "object"}

Defs = dict[str, Any]


def gemini_schema(schema: Any) -> dict[str, Any]:
    """``schema`` rebuilt for Gemini (an empty object schema for anything that is not a JSON object)."""
    if not isinstance(schema, dict):
        return {"type": "OBJECT"}
    defs: Defs = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _clean(schema, defs, 0)


def has_properties(schema: dict[str, Any]) -> bool:
    """Gemini refuses an OBJECT without properties as function parameters: such a tool takes none."""
    return schema.get("type") != "OBJECT" or bool(schema.get("properties")) or "anyOf" in schema


def _clean(node: Any, defs: Defs, depth: int) -> dict[str, Any]:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return {"type": "OBJECT"}
    node = _resolved(node, defs, depth)
    out: dict[str, Any] = {key: node[key] for key in _KEPT if key in node}
    _type_into(node, out, defs, depth)
    if isinstance(node.get("properties"), dict):
        out["properties"] = {str(k): _clean(v, defs, depth + 1) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = _clean(node["items"], defs, depth + 1)
    if isinstance(node.get("required"), list):
        names = [n for n in node["required"] if isinstance(n, str) and n in out.get("properties", {})]
        if names:
            out["required"] = names
    _enum_into(node, out)
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    return out


def _resolved(node: dict[str, Any], defs: Defs, depth: int) -> dict[str, Any]:
    """``node`` with its ``$ref`` inlined and its ``allOf`` merged (siblings win over what they bring)."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        base = _resolved(target, defs, depth + 1) if isinstance(target, dict) and depth < MAX_DEPTH else {}
        node = {**base, **{k: v for k, v in node.items() if k != "$ref"}}
    parts = node.get("allOf")
    if isinstance(parts, list):
        merged: dict[str, Any] = {}
        for part in parts:
            if isinstance(part, dict):
                part = _resolved(part, defs, depth + 1)
                props = {**merged.get("properties", {}), **(part.get("properties") or {})}
                required = [*merged.get("required", []), *(part.get("required") or [])]
                merged.update(part)
                merged.update(properties=props, required=required)
        node = {**merged, **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def _type_into(node: dict[str, Any], out: dict[str, Any], defs: Defs, depth: int) -> None:
    """``type`` (a name or a list), ``anyOf``/``oneOf`` with their ``null`` branches made ``nullable``."""
    declared = node.get("type")
    names = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    if "null" in names:
        out["nullable"] = True
    kinds = [n for n in names if isinstance(n, str) and n in _TYPES]
    if len(kinds) == 1:
        out["type"] = kinds[0].upper()
    elif len(kinds) > 1:
        out["anyOf"] = [{"type": k.upper()} for k in kinds]
    branches = node.get("anyOf", node.get("oneOf"))
    if isinstance(branches, list):
        real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(real) < len(branches):
            out["nullable"] = True
        cleaned = [_clean(b, defs, depth + 1) for b in real]
        if len(cleaned) == 1:
            out.update({k: v for k, v in cleaned[0].items() if k not in out})
        elif cleaned:
            out["anyOf"] = cleaned
    if "type" not in out and "anyOf" not in out and isinstance(node.get("properties"), dict):
        out["type"] = "OBJECT"


def _enum_into(node: dict[str, Any], out: dict[str, Any]) -> None:
    """Gemini's ``enum`` is for strings only: ``const`` and string enums kept, other enums dropped."""
    values = node.get("enum")
    if "const" in node:
        values = [node["const"]]
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        out["enum"] = values
        out.setdefault("type", "STRING")
