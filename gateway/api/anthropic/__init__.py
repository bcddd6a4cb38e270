"""The Anthropic dialect: ``POST /v1/messages`` (and ``/count_tokens``) parsed into the pipeline's
``Call`` (its body translated into OpenAI's chat shape) and the answer rendered back as Anthropic's
Message or its SSE events; untranslated when an Anthropic provider answered (pass-through).

Import the modules themselves (``parse``, ``render``, ``stream``, ``resources``, ``errors``).
"""
