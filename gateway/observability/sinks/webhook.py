"""The ``webhook`` sink: batches of access records POSTed as a JSON array.

Sent with the gateway's own upstream client (``upstream.client.Upstream``: its lean HTTP/1.1
transport, or the proxy-capable one when a proxy is set), an instance of its own, so a slow
collector never holds a connection the requests to providers need; a POST costs a fifth of the
CPU an httpx ``AsyncClient`` spends. ``headers`` go with every POST; their values (often a
token, ``${VAR}`` from .env) appear nowhere else: not in errors, readiness or the log. A 2xx is
delivered; no answer within ``timeout_s``, 408, 425, 429 and 5xx are tried again (``BatchSink``'s
retries and backoff); any other status drops the batch at once, since sending it again cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from ...core.request import UpstreamRequest
from ...upstream.client import Upstream, read_prefix
from .base import SinkContext
from .batch import BatchSink, DeliveryError
from .config import WebhookSinkConfig
from .record import AccessRecord

RETRY_STATUSES = frozenset({408, 425, 429})
MAX_ANSWER = 4096  # what is read of the collector's answer (it is not used)


def _describe(url: httpx.URL) -> str:
    """The destination for messages: scheme, host and port (a path or query may hold a token)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


class WebhookSink(BatchSink):
    def __init__(self, config: WebhookSinkConfig):
        super().__init__(config, config.retries, config.backoff_s, config.max_backoff_s)
        self.url, self._timeout = config.url, config.timeout_s
        self._where = _describe(httpx.URL(config.url))
        # one headers object for every POST: the lean transport joins the request head once
        self._headers = httpx.Headers({"content-type": "application/json", "user-agent": "llm-gateway-sink",
                                       **config.headers})
        self._client = Upstream(connect_timeout_s=min(config.timeout_s, 10.0))

    async def deliver(self, batch: list[AccessRecord]) -> None:
        body = b"[" + b",".join(record.json() for record in batch) + b"]"
        request = UpstreamRequest("POST", self.url, self._headers, body, shared_head=True)
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.open(request, self._timeout)
                await read_prefix(response, MAX_ANSWER)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"POST {self._where}: no answer ({type(exc).__name__})") from None
        finally:
            if response is not None:
                with contextlib.suppress(Exception):
                    await response.aclose()
        status = response.status_code
        if status < 300:
            return
        retry = status >= 500 or status in RETRY_STATUSES
        raise DeliveryError(f"POST {self._where} answered {status}", retry=retry)

    async def release(self) -> None:
        await self._client.aclose()


def build(config: WebhookSinkConfig, context: SinkContext) -> WebhookSink:
    return WebhookSink(config)
