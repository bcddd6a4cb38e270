"""Azure OpenAI: the OpenAI wire format, with deployments in the path and an ``api-key`` header.

The target's model is the deployment name; the provider's ``api_version`` goes in the query.
Answers, streams, errors and rate-limit headers are OpenAI's, so only the request differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import orjson

from ..core.call import CHAT, COMPLETIONS, Call
from ..core.request import UpstreamRequest
from .openai import OpenAIAdapter
from .openai.request import chat_body, request_headers, with_model

if TYPE_CHECKING:
    from ..core.targets import ProviderKey, Target


def deployment_url(target: Target, path: str) -> str:
    spec = target.provider
    return (f"{spec.api_root}/openai/deployments/{quote(target.model, safe='')}{path}"
            f"?api-version={quote(spec.api_version or '', safe='')}")


class AzureAdapter(OpenAIAdapter):
    def build_request(self, target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
        streams = call.stream and call.operation in (CHAT, COMPLETIONS)
        auth = {"api-key": key.secret} if key is not None else {}
        headers = request_headers(target.provider, auth, streams)
        body = chat_body(target, call.body, streams) if streams else with_model(target, call.body)
        body.pop("model", None)  # the deployment in the path names it
        return UpstreamRequest("POST", deployment_url(target, call.path), headers, orjson.dumps(body), shared_head=True)
