"""The request pipeline every inbound dialect runs on (see ``core``): what a dialect's resource
calls (``Pipeline``, ``SurfacePipeline``) and what the stages hand each other (``context``)."""

from .affinity import Pin, is_object_id
from .context import CLIENT_CLOSED, Admitted, Disconnect, Exchange, Stream, translated
from .core import Pipeline
from .surface import RawWhole, SurfacePipeline, UnsupportedEndpoint  # the rest of the OpenAI surface

__all__ = ["CLIENT_CLOSED", "Admitted", "Disconnect", "Exchange", "Pin", "Pipeline", "RawWhole", "Stream",
           "SurfacePipeline", "UnsupportedEndpoint", "is_object_id", "translated"]
