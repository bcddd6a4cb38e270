"""Value types and pure helpers every layer shares: what a request asks (``call``), what it used
(``usage``), providers, keys, targets and clients (``targets``), the upstream request
(``request``), prices, limits and budgets (``policy``, ``pricing``), token estimates
(``tokens``), rate-limit headers (``ratelimit``) and the incremental SSE decoder (``sse``).

Nothing here imports any other part of the gateway, so every layer may import it.
"""
