"""The route table: every endpoint the gateway serves, as data.

``app.py`` iterates ``TABLE`` to add the routes (``register``) and ``/openapi.json`` is generated
from the same entries (``api/openapi.py``), so the served surface and its description cannot
drift; ``tests/integration/test_openapi.py`` checks every route of the Falcon app against the
document, both ways. A new endpoint is one ``Route`` here: its URI templates, the resource that
serves them, what its operations take and answer (schema names from ``api/openapi.py``) and the
dialect its errors are written in (the entries' shape: ``table.py``). The admin API and the
dashboard declare their own entries (``admin.ADMIN_ROUTES``, ``ui.resources.UI_ROUTES``), which
join the table here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon.asgi

from ..pipeline import SurfacePipeline
from .admin import ADMIN_ROUTES
from .anthropic.resources import CountTokensResource, MessagesResource
from .dialects import ANTHROPIC, GEMINI, OPENAI
from .google.resources import CountTokensResource as GoogleCountTokensResource
from .google.resources import GenerateContentResource
from .google.resources import ModelsResource as GoogleModelsResource
from .health import HealthResource, LivelinessResource, ReadinessResource
from .mcp import McpResource
from .metrics import MetricsResource
from .models import ModelsResource
from .openai import CHAT_ENDPOINT, COMPLETIONS_ENDPOINT, EMBEDDINGS_ENDPOINT, OpenAIResource
from .openai.surface import (
    IMAGES_ENDPOINT,
    MODERATIONS_ENDPOINT,
    SPEECH_ENDPOINT,
    TRANSCRIPTIONS_ENDPOINT,
    TRANSLATIONS_ENDPOINT,
    JsonSurfaceResource,
    ResponsesResource,
    StatefulAction,
    StatefulCollection,
    StatefulGet,
    StatefulObject,
    SurfaceEndpoint,
    UploadResource,
)
from .openapi import DocsResource, OpenAPIResource
from .table import (
    ADMIN,
    ANTHROPIC_PREFIXES,
    GOOGLE_VERSIONS,
    PUBLIC,
    Operation,
    Route,
    Services,
    prefixed,
    with_base_paths,
)
from .ui.resources import UI_ROUTES

_OPENAI_ROUTES = (
    Route(prefixed(CHAT_ENDPOINT.path), "OpenAI", (
        Operation("POST", "Chat completion, whole or streamed (SSE; stream_options.include_usage)",
                  "ChatCompletionRequest", "ChatCompletion", streams=True),),
        lambda s: OpenAIResource(s.pipeline, CHAT_ENDPOINT)),
    Route(prefixed(COMPLETIONS_ENDPOINT.path), "OpenAI", (
        Operation("POST", "Text completion (legacy), whole or streamed", "CompletionRequest", "TextCompletion",
                  streams=True),),
        lambda s: OpenAIResource(s.pipeline, COMPLETIONS_ENDPOINT)),
    Route(prefixed(EMBEDDINGS_ENDPOINT.path), "OpenAI", (
        Operation("POST", "Embeddings", "EmbeddingRequest", "EmbeddingList"),),
        lambda s: OpenAIResource(s.pipeline, EMBEDDINGS_ENDPOINT)),
    Route(prefixed("/models"), "OpenAI", (
        Operation("GET", "The models the calling key may use (aliases, provider:model ids, bare names); in "
                  "Anthropic's list shape (limit, after_id, before_id) when the request carries anthropic-version",
                  answer="ModelListEitherShape", errors=(400, 401), query=("limit", "after_id", "before_id")),),
        lambda s: ModelsResource(s.runtime)),
)

def _google(method: str) -> tuple[str, ...]:
    """A Google model method under both of the API's versions (Google's SDKs call either)."""
    return tuple(f"{version}/models/{method}" for version in GOOGLE_VERSIONS)


_DIALECT_ROUTES = (
    Route(prefixed("/messages", ANTHROPIC_PREFIXES), "Anthropic", (
        Operation("POST", "Anthropic Messages API, whole or streamed (SSE), routed to any provider; passed "
                  "through untranslated to Anthropic providers", "AnthropicMessagesRequest", "AnthropicMessage",
                  streams=True),),
        lambda s: MessagesResource(s.pipeline), ANTHROPIC),
    Route(prefixed("/messages/count_tokens", ANTHROPIC_PREFIXES), "Anthropic", (
        Operation("POST", "Input tokens of a Messages request: the provider's count when the model routes to an "
                  "Anthropic provider (passed through), else the gateway's estimate (about 4 characters a token)",
                  "AnthropicCountTokensRequest", "AnthropicTokenCount"),),
        lambda s: CountTokensResource(s.pipeline), ANTHROPIC),
    Route(_google("{model}:generateContent"), "Google", (
        Operation("POST", "Google generateContent, routed to any provider; passed through untranslated to "
                  "Gemini providers", "GenerateContentRequest", "GenerateContentResponse"),),
        lambda s: GenerateContentResource(s.pipeline, stream=False), GEMINI),
    Route(_google("{model}:streamGenerateContent"), "Google", (
        Operation("POST", "Google streamGenerateContent: SSE events with ?alt=sse, else one JSON array",
                  "GenerateContentRequest", "GenerateContentResponse", streams=True, query=("alt",)),),
        lambda s: GenerateContentResource(s.pipeline, stream=True), GEMINI),
    Route(_google("{model}:countTokens"), "Google", (
        Operation("POST", "Google countTokens: the provider's count for a model routed to a Gemini provider, else the "
                  "gateway's estimate (about 4 characters a token)", "GoogleCountTokensRequest", "GoogleTokenCount"),),
        lambda s: GoogleCountTokensResource(s.pipeline), GEMINI),
    Route(("/v1beta/models",), "Google", (
        Operation("GET", "The models the calling key may use, in Google's ListModelsResponse shape",
                  answer="GoogleModelList", errors=(401,), query=("pageSize", "pageToken")),),
        lambda s: GoogleModelsResource(s.runtime), GEMINI),
)

# --- the rest of the OpenAI surface (api/openai/surface.py) -------------------------------------------------
def _surface(s: Services) -> SurfacePipeline:
    """The app's pipeline: a ``SurfacePipeline`` (app.py), whose affinity pins the stateful routes share."""
    assert isinstance(s.pipeline, SurfacePipeline), "build_app must make a SurfacePipeline"
    return s.pipeline


def _json_route(endpoint: SurfaceEndpoint, summary: str, media: str = "application/json") -> Route:
    return Route(prefixed(endpoint.path), "OpenAI", (Operation("POST", summary, media=media),),
                 lambda s: JsonSurfaceResource(_surface(s), endpoint))


def _upload_route(endpoint: SurfaceEndpoint, summary: str) -> Route:
    return Route(prefixed(endpoint.path), "OpenAI", (Operation("POST", summary + " (multipart/form-data)"),),
                 lambda s: UploadResource(_surface(s), endpoint))


def _stateful(paths: tuple[str, ...], methods: tuple[str, ...], summary: str,
              make: Callable[[SurfacePipeline], object]) -> Route:
    ops = tuple(Operation(m, f"{summary}: passed through, pinned to the provider key holding the object",
                          media="application/json" if m != "GET" or "content" not in paths[0] else "*/*")
                for m in methods)
    return Route(tuple(p for path in paths for p in prefixed(path)), "OpenAI stateful", ops,
                 lambda s: make(_surface(s)))


_SURFACE_ROUTES = (
    _json_route(IMAGES_ENDPOINT, "Image generation"),
    _json_route(MODERATIONS_ENDPOINT, "Moderation"),
    _json_route(SPEECH_ENDPOINT, "Text to speech: the audio streamed back with the upstream's content type",
                media="audio/mpeg"),
    _upload_route(TRANSCRIPTIONS_ENDPOINT, "Transcription, the upload streamed through"),
    _upload_route(TRANSLATIONS_ENDPOINT, "Translation to English, the upload streamed through"),
    Route(prefixed("/responses"), "OpenAI", (
        Operation("POST", "Responses API, whole or streamed (response.* events); translated to chat for providers "
                  "without it", streams=True),),
        lambda s: ResponsesResource(_surface(s))),
    _stateful(("/files", "/assistants", "/threads/{thread_id}/messages", "/threads/{thread_id}/runs"),
              ("GET", "POST"), "List or create", StatefulCollection),
    _stateful(("/threads",), ("POST",), "Create a thread", StatefulAction),
    _stateful(("/files/{object_id}", "/assistants/{object_id}", "/threads/{thread_id}",
               "/threads/{thread_id}/messages/{object_id}", "/threads/{thread_id}/runs/{object_id}"),
              ("GET", "POST", "DELETE"), "Retrieve, modify or delete", StatefulObject),
    _stateful(("/files/{object_id}/content",), ("GET",), "A file's content", StatefulGet),
    _stateful(("/threads/{thread_id}/runs/{object_id}/steps",), ("GET",), "A run's steps", StatefulGet),
    _stateful(("/threads/runs", "/threads/{thread_id}/runs/{object_id}/cancel",
               "/threads/{thread_id}/runs/{object_id}/submit_tool_outputs"), ("POST",), "Run actions",
              StatefulAction),
)

_OPS_ROUTES = (
    Route(("/health",), "Operations", (Operation("GET", "Liveness: always healthy while serving", answer="Health",
                                                 auth=PUBLIC, errors=()),),
          lambda s: HealthResource()),
    Route(("/health/liveliness", "/health/liveness"), "Operations", (
        Operation("GET", "Liveness probe: the text I'm alive!", media="text/plain", auth=PUBLIC, errors=()),),
        lambda s: LivelinessResource()),
    Route(("/health/readiness",), "Operations", (
        Operation("GET", "Readiness: config loaded, last reload; details only for the master or an admin key",
                  answer="Readiness", auth=PUBLIC, errors=(503,)),),
        lambda s: ReadinessResource(s.runtime)),
    Route(("/metrics",), "Operations", (
        Operation("GET", "Prometheus metrics (the master or an admin key, unless server.public_metrics)",
                  media="text/plain", auth=ADMIN, errors=(401, 403)),),
        lambda s: MetricsResource(s.runtime)),
    Route(("/openapi.json",), "Operations", (
        Operation("GET", "This document (OpenAPI 3.1), generated from the gateway's route table",
                  answer="OpenAPIDocument", auth=PUBLIC, errors=()),),
        lambda s: OpenAPIResource(with_base_paths(TABLE, s.base_paths))),
    Route(("/docs",), "Operations", (
        Operation("GET", "This document as a page (self-contained HTML)", media="text/html", auth=PUBLIC, errors=()),),
        lambda s: DocsResource()),
)

_MCP_ROUTES = (
    Route(("/mcp", "/mcp/{server_id}"), "MCP", (
        Operation("POST", "One MCP JSON-RPC message (streamable HTTP, revisions 2026-07-28 and 2025-11-25): the MCP "
                  "servers the key may use, tools named <server>__<tool> on /mcp, own names on /mcp/{server_id}; "
                  "answered in JSON or, while progress is relayed, as an event stream", streams=True,
                  errors=(400, 401, 404, 413)),
        Operation("GET", "No stream of server-initiated messages is offered: 405", errors=(401, 404, 405)),
        Operation("DELETE", "End a 2025-11-25 session (Mcp-Session-Id)", errors=(400, 401, 404, 405))),
        lambda s: McpResource(s.runtime)),
)

TABLE: tuple[Route, ...] = (*_OPENAI_ROUTES, *_SURFACE_ROUTES, *_DIALECT_ROUTES, *_MCP_ROUTES, *_OPS_ROUTES,
                            *UI_ROUTES, *ADMIN_ROUTES)


def register(app: falcon.asgi.App[Any, Any], services: Services, table: tuple[Route, ...] = TABLE) -> None:
    """Add every route of ``table`` (with ``services.base_paths`` mirrored) to ``app`` (one resource
    per entry, shared by its paths)."""
    for entry in with_base_paths(table, services.base_paths):
        resource = entry.make(services)
        for path in entry.paths:
            app.add_route(path, resource)


_PREFIX_DIALECTS = (("/v1beta/", GEMINI), ("/v1/messages", ANTHROPIC), ("/api/v1/messages", ANTHROPIC))
# routes both OpenAI's and Anthropic's clients call: Anthropic's send anthropic-version
_SHARED_WITH_ANTHROPIC = frozenset(prefixed("/models"))


def dialects(base_paths: tuple[str, ...] = ()) -> dict[str, str]:
    """The dialect of each URI template the app serves (``base_paths`` mirrored as ``register`` does)."""
    return {path: route.dialect for route in with_base_paths(TABLE, base_paths) for path in route.paths}


def dialect_of(known: dict[str, str], template: str | None, path: str, anthropic_version: str | None = None) -> str:
    """The dialect a request's errors are written in: its route's (``known``: ``dialects()``), or by its
    path when no route matched; Anthropic's on a route shared with it when the request carries
    ``anthropic-version``."""
    if template is not None and template in known:
        if anthropic_version and template in _SHARED_WITH_ANTHROPIC:
            return ANTHROPIC
        return known[template]
    return next((dialect for prefix, dialect in _PREFIX_DIALECTS if path.startswith(prefix)), OPENAI)
