"""Google's generateContent dialect: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent`` parsed into the pipeline's ``Call`` (the body translated into OpenAI's
chat shape) and the answer rendered back as ``GenerateContentResponse`` objects; untranslated
when a Gemini provider answered (pass-through); ``:countTokens`` and the models list.

Import the modules themselves (``parse``, ``options``, ``render``, ``stream``, ``resources``,
``errors``).
"""
