"""What a request asks of an upstream, in OpenAI terms: a ``Call`` and its operation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

# What the pipeline asks of an upstream (``Call.operation``).
CHAT = "chat"  # POST /chat/completions, streamed or whole
COMPLETIONS = "completions"  # POST /completions, streamed or whole
EMBEDDINGS = "embeddings"  # POST /embeddings, whole
# ``Call.path`` under the provider's root with the client's own body (``native_body``, only the model
# rewritten), for a provider of the client's dialect; ``body`` holds the request in OpenAI's chat
# shape for the estimates and the guards (a token count: Anthropic's count_tokens, Gemini's countTokens)
PASSTHROUGH = "passthrough"
# The rest of OpenAI's surface: each also names the endpoint family a provider may serve
# (``pipeline/surface.py`` refuses a provider that cannot, with a 400 naming it).
IMAGES = "images"  # POST /images/generations (JSON in, JSON out)
AUDIO = "audio"  # POST /audio/transcriptions|translations (``Call.upload``); /audio/speech (binary streamed back)
MODERATIONS = "moderations"  # POST /moderations
RESPONSES = "responses"  # POST /responses, whole or streamed (``response.*`` events)
FILES = "files"  # stateful: ``Call.method`` and ``Call.path`` name the object (see pipeline/affinity.py)
ASSISTANTS = "assistants"
THREADS = "threads"


class Upload(Protocol):
    """A request body passed through as bytes (a multipart upload): one fresh pass per attempt."""

    content_type: str
    length: int | None  # bytes, when known (sent as Content-Length)

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the pipeline hands it to an adapter, in OpenAI terms."""

    operation: str  # CHAT | COMPLETIONS | EMBEDDINGS | PASSTHROUGH | ...
    path: str  # the OpenAI path ("/chat/completions"); for PASSTHROUGH the path under the provider's root
    body: dict[str, Any]  # OpenAI-shape request body (never mutated)
    model: str  # what the client asked for: answers carry it back
    stream: bool = False
    wants_usage: bool = False  # the client asked for a usage chunk (stream_options.include_usage)
    dialect: str = "openai"  # the inbound dialect the body came in (see pipeline/core.py: pass-through)
    # the rest of the surface (defaults: a JSON POST); adapters that serve only chat may ignore them
    method: str = "POST"  # GET / DELETE for the stateful endpoints (``body`` is then empty)
    query: str = ""  # the query string passed on as it came (list endpoints' limit, after, order)
    upload: Upload | None = None  # a non-JSON body (multipart) streamed through instead of ``body``
    headers: tuple[tuple[str, str], ...] = ()  # client headers passed on (OpenAI-Beta)
    # Same-dialect pass-through: for a dialect other than OpenAI, ``body`` is the request
    # translated into OpenAI's shape (what every other adapter and the estimates read) and
    # ``native_body`` the body exactly as the client sent it. An adapter whose protocol equals
    # ``dialect`` sends ``native_body`` (only its model replaced by the target's) and hands the
    # answer and stream back untranslated: see ``providers.base.ProviderAdapter``.
    native_body: dict[str, Any] | None = None
    # What the translation into OpenAI's shape left out (fields and blocks OpenAI has no place
    # for), by name: logged once, at debug level, when the call goes to an upstream that is not
    # of ``dialect``'s protocol (which then never sees them).
    dropped: tuple[str, ...] = ()
    # The answer reaches the client in another shape (a dialect's translator reads the OpenAI-shape
    # stream and writes its own model): a relay need not rewrite the model in each chunk.
    translated: bool = False
