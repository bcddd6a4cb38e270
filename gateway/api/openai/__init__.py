"""The OpenAI dialect: its endpoints parse OpenAI bodies into the pipeline and render its results."""

from .parse import CHAT_ENDPOINT, COMPLETIONS_ENDPOINT, EMBEDDINGS_ENDPOINT, Endpoint
from .resources import OpenAIResource

__all__ = ["CHAT_ENDPOINT", "COMPLETIONS_ENDPOINT", "EMBEDDINGS_ENDPOINT", "Endpoint", "OpenAIResource"]
