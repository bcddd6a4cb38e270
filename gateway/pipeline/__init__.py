"""The request pipeline every inbound dialect runs on (see ``core``).

Dialects import what they need from here, never from ``providers``: ``Call`` (and its operations)
is what a dialect's parser makes of a request.
"""

from ..providers.base import CHAT, COMPLETIONS, EMBEDDINGS, PASSTHROUGH, Call, Usage
from .context import CLIENT_CLOSED, Disconnect, EventStream, Exchange, Whole
from .core import Pipeline

__all__ = ["CHAT", "CLIENT_CLOSED", "COMPLETIONS", "EMBEDDINGS", "PASSTHROUGH", "Call", "Disconnect", "EventStream",
           "Exchange", "Pipeline", "Usage", "Whole"]
