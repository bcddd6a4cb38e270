"""The response cache: answers to identical requests served again without an
upstream call, opted into per alias or per client (``cache: {ttl_s, max_mb}``).

``key`` digests the normalized request, ``entry`` is what is kept, ``memory`` and ``redis`` keep
it (``base.CacheBackend``), and ``service.ResponseCache`` is what the pipeline talks to.
"""

from .base import CacheBackend
from .entry import JSON, SSE, Entry
from .service import CachePlan, ResponseCache, cache_directives

__all__ = ["JSON", "SSE", "CacheBackend", "CachePlan", "Entry", "ResponseCache", "cache_directives"]
