"""The ``webhook`` sink: batches of access records POSTed as a JSON array.

Its own httpx client (a small pool of its own, so a slow collector never holds a connection the
requests to providers need), with ``headers`` sent on every POST; their values (often a token,
``${VAR}`` from .env) appear nowhere else: not in errors, readiness or the log. A 2xx is
delivered; no answer, 408, 429 and 5xx are tried again (``BatchSink``'s retries and backoff);
any other status drops the batch at once, since sending it again cannot help.
"""

from __future__ import annotations

import httpx
import orjson

from .base import SinkContext
from .batch import BatchSink, DeliveryError
from .config import WebhookSinkConfig
from .record import AccessRecord

RETRY_STATUSES = frozenset({408, 425, 429})


def _describe(url: httpx.URL) -> str:
    """The destination for messages: scheme, host and port (a path or query may hold a token)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


class WebhookSink(BatchSink):
    def __init__(self, config: WebhookSinkConfig):
        super().__init__(config, config.retries, config.backoff_s, config.max_backoff_s)
        self.url = httpx.URL(config.url)
        headers = {"content-type": "application/json", "user-agent": "llm-gateway-sink"}
        headers.update(config.headers)
        self._client = httpx.AsyncClient(headers=headers, timeout=config.timeout_s, follow_redirects=False,
                                         limits=httpx.Limits(max_connections=2, max_keepalive_connections=2))

    async def deliver(self, batch: list[AccessRecord]) -> None:
        body = orjson.dumps([record.fields() for record in batch], default=str)
        try:
            response = await self._client.post(self.url, content=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"POST {_describe(self.url)}: no answer ({type(exc).__name__})") from None
        await response.aclose()
        status = response.status_code
        if status < 300:
            return
        retry = status >= 500 or status in RETRY_STATUSES
        raise DeliveryError(f"POST {_describe(self.url)} answered {status}", retry=retry)

    async def release(self) -> None:
        await self._client.aclose()


def build(config: WebhookSinkConfig, context: SinkContext) -> WebhookSink:
    return WebhookSink(config)
