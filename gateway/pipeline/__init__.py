"""The request pipeline every inbound dialect runs on (see ``core``).

Dialects import what they need from here, never from ``providers``: ``Call`` (and its operations)
is what a dialect's parser makes of a request.
"""

from ..core.call import (
    ASSISTANTS,
    AUDIO,
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    FILES,
    IMAGES,
    MODERATIONS,
    PASSTHROUGH,
    RESPONSES,
    THREADS,
    Call,
)
from ..core.usage import Usage
from .affinity import Pin, is_object_id
from .context import CLIENT_CLOSED, Disconnect, EventStream, Exchange, Whole
from .core import Pipeline
from .surface import ByteStream, RawWhole, SurfacePipeline, UnsupportedEndpoint  # the rest of the OpenAI surface

__all__ = ["ASSISTANTS", "AUDIO", "CHAT", "CLIENT_CLOSED", "COMPLETIONS", "EMBEDDINGS", "FILES", "IMAGES",
           "MODERATIONS", "PASSTHROUGH", "RESPONSES", "THREADS", "ByteStream", "Call", "Disconnect", "EventStream",
           "Exchange", "Pin", "Pipeline", "RawWhole", "SurfacePipeline", "UnsupportedEndpoint", "Usage", "Whole",
           "is_object_id"]
