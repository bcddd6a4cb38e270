"""``GET /openapi.json`` describes exactly the routes the app serves, and is a valid OpenAPI 3.1 document.

The routes are read from the Falcon app ``gateway.app.build_falcon_app`` builds (the one the
server runs), so a route added any other way than through the route table is caught here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import falcon
import falcon.routing
import httpx
import pytest
from openapi_spec_validator import validate

from gateway.app import build_falcon_app
from gateway.config.snapshot import load_snapshot
from gateway.server.runtime import Runtime
from gateway.settings import Settings
from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def falcon_routes(app: Any) -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every method a routed resource implements."""
    found: set[tuple[str, str]] = set()
    stack = list(app._router._roots)  # falcon's CompiledRouter tree (no public walk exists)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.resource is None:
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", node.uri_template)
        for method in falcon.routing.map_http_methods(node.resource):
            found.add((path, method))
    return found


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item}


@pytest.fixture
def served_routes(tmp_path: Path, fake: FakeUpstream) -> set[tuple[str, str]]:
    """The routes of the Falcon app built in this process from the same kind of config the gateway runs."""
    config = tmp_path / "config.yaml"
    config.write_text(basic_config(fake))
    env = tmp_path / ".env"
    env.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\n")
    settings = Settings(config=config, env_file=env, data_dir=tmp_path / "data", watch=False)
    runtime = Runtime(settings, load_snapshot(settings.config, settings.env_file))
    return falcon_routes(build_falcon_app(runtime))


def test_every_route_is_documented_and_every_documented_route_served(gateway: Gateway,
                                                                      served_routes: set[tuple[str, str]]) -> None:
    doc = httpx.get(gateway.base_url + "/openapi.json", timeout=10).json()
    listed = documented(doc)
    assert served_routes - listed == set(), "routes the app serves that /openapi.json does not list"
    assert listed - served_routes == set(), "routes /openapi.json lists that the app does not serve"
    assert ("/v1/messages", "POST") in listed and ("/v1beta/models/{model}:generateContent", "POST") in listed


def test_document_is_valid_openapi_3_1_with_request_and_error_schemas(gateway: Gateway) -> None:
    answer = httpx.get(gateway.base_url + "/openapi.json", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    validate(doc)  # openapi-spec-validator: raises on an invalid document
    assert doc["openapi"].startswith("3.1")
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"}
    assert chat["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIError")
    messages = doc["paths"]["/v1/messages"]["post"]
    assert messages["responses"]["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/AnthropicError")
    google = doc["paths"]["/v1beta/models/{model}:generateContent"]["post"]
    assert google["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/GoogleError")
    assert google["parameters"][0] == {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    schemas = doc["components"]["schemas"]
    assert schemas["AnthropicMessagesRequest"]["required"] == ["model", "max_tokens", "messages"]


def test_every_documented_operation_is_routed(gateway: Gateway) -> None:
    """Through HTTP: each documented path and method reaches a resource (no 404 'No such endpoint', no 405)."""
    doc = httpx.get(gateway.base_url + "/openapi.json", timeout=10).json()
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        for path, item in doc["paths"].items():
            concrete = re.sub(r"\{\w+\}", "x", path)
            for method in item:
                answer = client.request(method.upper(), concrete, headers={"Authorization": "Bearer sk-not-a-key-0000"},
                                        json={} if method in ("post", "put", "patch") else None)
                assert answer.status_code != 405, (method, path)
                no_route = answer.status_code == 404 and "No such endpoint" in answer.text
                assert not no_route, (method, path, answer.text)


def test_docs_page_is_self_contained(gateway: Gateway) -> None:
    page = httpx.get(gateway.base_url + "/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text), "no CDN or external resource"
    assert "<script src" not in page.text


def test_openapi_needs_no_key_and_names_no_secret(gateway: Gateway) -> None:
    text = httpx.get(gateway.base_url + "/openapi.json", timeout=10).text
    assert CLIENT_KEY not in text and MASTER_KEY not in text and "sk-upstream-key" not in text
