"""Google's generateContent dialect: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent`` parsed into the pipeline's ``Call`` (the body translated into OpenAI's
chat shape) and the answer rendered back as ``GenerateContentResponse`` objects; untranslated
when a Gemini provider answered (pass-through).

Import the modules themselves (``parse``, ``render``, ``stream``, ``resources``, ``errors``).
"""
