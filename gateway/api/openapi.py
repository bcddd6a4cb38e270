"""``GET /openapi.json`` (OpenAPI 3.1) generated from the route table, and ``GET /docs`` rendering it.

Every path, method, request schema, answer and error shape comes from ``api/routes.py``, the
table the app registers its routes from; this module only holds the schemas those entries name
and turns the table into the document (built once per worker: the table is fixed at start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import falcon
import falcon.asgi
import orjson

from .. import __version__
from .table import Operation, Route

_STR = {"type": "string"}
_INT = {"type": "integer"}
_OBJ = {"type": "object"}
_ARR = {"type": "array"}
_POSITIVE = {"type": "integer", "minimum": 1}


def _object(required: Iterable[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties, "additionalProperties": True}


_OPENAI_ERROR = _object(["error"], error=_object(["message", "type", "code"], message=_STR, type=_STR, code=_STR,
                                                 param={"type": ["string", "null"]}))
_ANTHROPIC_ERROR = _object(["type", "error"], type={"const": "error"},
                           error=_object(["type", "message"], type=_STR, message=_STR))
_GOOGLE_ERROR = _object(["error"], error=_object(["code", "message", "status"], code=_INT, message=_STR, status=_STR,
                                                 details={"type": "array", "items": _OBJ}))
_MESSAGES = {"type": "array", "minItems": 1, "items": _object(["role"], role=_STR)}
_ANTHROPIC_MESSAGES = {"type": "array", "minItems": 1,
                       "items": _object(["role", "content"], role={"enum": ["user", "assistant", "system"]},
                                        content={"type": ["string", "array"]})}
_GOOGLE_CONTENTS = {"type": "array", "minItems": 1,
                    "items": _object(["parts"], role={"enum": ["user", "model", "function", "tool"]}, parts=_ARR)}

SCHEMAS: dict[str, dict[str, Any]] = {
    "OpenAIError": _OPENAI_ERROR,
    "AnthropicError": _ANTHROPIC_ERROR,
    "GoogleError": _GOOGLE_ERROR,
    "ChatCompletionRequest": _object(["model", "messages"], model=_STR, messages=_MESSAGES, stream={"type": "boolean"},
                                     stream_options=_object([], include_usage={"type": "boolean"}),
                                     max_tokens=_POSITIVE, max_completion_tokens=_POSITIVE, tools=_ARR,
                                     tool_choice={}, temperature={"type": "number"}),
    "CompletionRequest": _object(["model", "prompt"], model=_STR, prompt={"type": ["string", "array"]},
                                 stream={"type": "boolean"}, max_tokens=_POSITIVE),
    "EmbeddingRequest": _object(["model", "input"], model=_STR, input={"type": ["string", "array"]}),
    "ChatCompletion": _object(["id", "object", "model", "choices"], id=_STR, object={"const": "chat.completion"},
                              created=_INT, model=_STR, choices=_ARR, usage=_OBJ),
    "TextCompletion": _object(["id", "object", "model", "choices"], id=_STR, object={"const": "text_completion"},
                              model=_STR, choices=_ARR, usage=_OBJ),
    "EmbeddingList": _object(["object", "data"], object={"const": "list"}, data=_ARR, model=_STR, usage=_OBJ),
    "ModelList": _object(["object", "data"], object={"const": "list"},
                         data={"type": "array", "items": _object(["id", "object"], id=_STR, object={"const": "model"},
                                                                 created=_INT, owned_by=_STR)}),
    "AnthropicModelList": _object(["data", "has_more", "first_id", "last_id"],
                                  data={"type": "array", "items": _object(
                                      ["type", "id", "display_name", "created_at"], type={"const": "model"}, id=_STR,
                                      display_name=_STR, created_at={"type": "string", "format": "date-time"})},
                                  has_more={"type": "boolean"}, first_id={"type": ["string", "null"]},
                                  last_id={"type": ["string", "null"]}),
    "AnthropicMessagesRequest": _object(["model", "max_tokens", "messages"], model=_STR, max_tokens=_POSITIVE,
                                        messages=_ANTHROPIC_MESSAGES, system={"type": ["string", "array"]},
                                        stream={"type": "boolean"}, tools=_ARR, tool_choice=_OBJ,
                                        stop_sequences={"type": "array", "items": _STR},
                                        temperature={"type": "number"}, top_p={"type": "number"}, metadata=_OBJ,
                                        thinking=_OBJ, output_config=_OBJ),
    "AnthropicCountTokensRequest": _object(["model", "messages"], model=_STR, messages=_ANTHROPIC_MESSAGES,
                                           system={"type": ["string", "array"]}, tools=_ARR),
    "AnthropicMessage": _object(["id", "type", "role", "content", "model", "stop_reason", "usage"], id=_STR,
                                type={"const": "message"}, role={"const": "assistant"}, model=_STR, content=_ARR,
                                stop_reason={"type": ["string", "null"]}, stop_sequence={"type": ["string", "null"]},
                                usage=_object(["input_tokens", "output_tokens"], input_tokens=_INT,
                                              output_tokens=_INT)),
    "AnthropicTokenCount": _object(["input_tokens"], input_tokens=_INT),
    "GenerateContentRequest": _object(["contents"], contents=_GOOGLE_CONTENTS, systemInstruction=_OBJ,
                                      generationConfig=_object([], maxOutputTokens=_POSITIVE,
                                                               temperature={"type": "number"}),
                                      tools=_ARR, toolConfig=_OBJ),
    "GenerateContentResponse": _object(["candidates"], candidates=_ARR, usageMetadata=_OBJ, modelVersion=_STR),
    "GoogleCountTokensRequest": _object([], contents=_GOOGLE_CONTENTS, generateContentRequest=_OBJ),
    "GoogleTokenCount": _object(["totalTokens"], totalTokens=_INT, promptTokensDetails=_ARR),
    "GoogleModelList": _object(["models"], nextPageToken=_STR,
                               models={"type": "array", "items": _object(["name"], name=_STR, displayName=_STR,
                                                                         supportedGenerationMethods=_ARR)}),
    "Health": _object(["status"], status=_STR),
    "Readiness": _object(["status"], status=_STR),
    "OpenAPIDocument": _object(["openapi", "info", "paths"], openapi=_STR, info=_OBJ, paths=_OBJ),
}

SCHEMAS["ModelListEitherShape"] = {"oneOf": [{"$ref": "#/components/schemas/ModelList"},
                                            {"$ref": "#/components/schemas/AnthropicModelList"}]}
_ERROR_SCHEMA = {"openai": "OpenAIError", "anthropic": "AnthropicError", "gemini": "GoogleError"}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A client key (or the master key)."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "The same key, as x-api-key."},
    "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
    "googKeyQuery": {"type": "apiKey", "in": "query", "name": "key"},
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "openai": [{"bearer": []}, {"apiKey": []}], "anthropic": [{"apiKey": []}, {"bearer": []}],
    "gemini": [{"googApiKey": []}, {"googKeyQuery": []}, {"bearer": []}]}
_TEMPLATE_FIELD = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def openapi_path(template: str) -> str:
    """A Falcon URI template as an OpenAPI path (``/ui/{name:path}`` -> ``/ui/{name}``)."""
    return _TEMPLATE_FIELD.sub(r"{\1}", template)


def build_document(table: tuple[Route, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        for template in route.paths:
            item = paths.setdefault(openapi_path(template), {})
            for op in route.operations:
                item[op.method.lower()] = _operation(route, op, template)
    return {"openapi": "3.1.0",
            "info": {"title": "LLM gateway", "version": __version__,
                     "description": "An OpenAI-compatible LLM gateway that also speaks Anthropic's Messages API and "
                                    "Google's generateContent. Errors come in each dialect's own shape."},
            "paths": paths,
            "components": {"schemas": SCHEMAS, "securitySchemes": _SECURITY_SCHEMES}}


def _operation(route: Route, op: Operation, template: str) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": _operation_id(op.method, template), "summary": op.summary,
                           "tags": [route.tag], "responses": _responses(route, op)}
    parameters = [{"name": name, "in": "path", "required": True, "schema": _STR}
                  for name in _TEMPLATE_FIELD.findall(template)]
    parameters += [{"name": name, "in": "query", "required": False, "schema": _STR} for name in op.query]
    if parameters:
        out["parameters"] = parameters
    if op.request is not None:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": _ref(op.request)}}}
    out["security"] = [] if op.auth == "public" else _SECURITY[route.dialect]
    return out


def _responses(route: Route, op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {op.media: {"schema": _ref(op.answer)} if op.answer else {}}
    if op.streams:
        content["text/event-stream"] = {"schema": _STR}
    responses: dict[str, Any] = {"200": {"description": "OK" + (" (a stream when asked for)" if op.streams else ""),
                                         "content": content}}
    error = {"application/json": {"schema": _ref(_ERROR_SCHEMA[route.dialect])}}
    for status in op.errors:
        responses[str(status)] = {"description": _REASONS.get(status, "Error"), "content": error}
    return responses


_REASONS = {400: "Invalid request or unknown model", 401: "Missing or invalid key", 403: "Not allowed for this key",
            404: "Not found", 413: "Request too large", 429: "Rate limited, over budget or every key cooling down "
            "(Retry-After)", 502: "Provider error", 503: "Provider unavailable", 504: "Upstream timeout"}


def _operation_id(method: str, template: str) -> str:
    return method.lower() + "_" + (re.sub(r"[^A-Za-z0-9]+", "_", openapi_path(template)).strip("_") or "root")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class OpenAPIResource:
    def __init__(self, table: tuple[Route, ...]):
        self.table = table
        self._data: bytes | None = None

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if self._data is None:  # built on first use: the table's resources import this module
            self._data = orjson.dumps(build_document(self.table))
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._data


class DocsResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; "
                        "style-src 'unsafe-inline'")
        resp.data = DOCS_PAGE


DOCS_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LLM gateway API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.4rem .7rem}
.m{display:inline-block;min-width:3.5rem;font-weight:700;font-family:monospace}
.GET{color:#1a7f37}.POST{color:#0550ae}.HEAD{color:#6e7781}
code{font-size:13px}pre{background:#f6f8fa;padding:.5rem;overflow:auto;font-size:12px}
summary{cursor:pointer}
</style></head>
<body><h1>LLM gateway API</h1>
<p>Generated from <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<div id="out">Loading...</div>
<script>
(async () => {
  const out = document.getElementById("out");
  const doc = await (await fetch("/openapi.json")).json();
  const schemas = doc.components.schemas;
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    Object.assign(e, attrs || {});
    kids.forEach(k => e.append(k));
    return e;
  };
  const resolve = s => s && s.$ref ? schemas[s.$ref.split("/").pop()] : s;
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([path, method.toUpperCase(), op]);
    }
  }
  out.textContent = "";
  out.append(el("p", {textContent: doc.info.description}));
  for (const [tag, ops] of Object.entries(byTag)) {
    out.append(el("h2", {textContent: tag}));
    for (const [path, method, op] of ops) {
      const box = el("details", {className: "op"},
        el("summary", {}, el("span", {className: "m " + method, textContent: method}), " ",
           el("code", {textContent: path}), " \\u2014 " + op.summary));
      const body = op.requestBody && op.requestBody.content["application/json"].schema;
      if (body) box.append(el("p", {textContent: "Request body:"}),
                           el("pre", {textContent: JSON.stringify(resolve(body), null, 2)}));
      const codes = Object.keys(op.responses).join(", ");
      box.append(el("p", {textContent: "Answers: " + codes + (op.security.length ? " \\u00b7 needs a key" : "")}));
      out.append(box);
    }
  }
})().catch(err => { document.getElementById("out").textContent = "Could not load /openapi.json: " + err; });
</script></body></html>
"""
