"""Operational data is not public: /metrics and the readiness details need the master key or an
admin client's key; /health, /health/liveliness (and /health/liveness) and readiness's bare status
stay open."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

ADMIN_KEY = "sk-test-admin-client-key-0123456789"
ADMIN_ID = "ops-team-admin"
CLIENT_ID = "app"  # basic_config's client
WRONG_KEY = "sk-test-not-a-known-key-000000"
ADMIN_CLIENT = f"""# one more client (basic_config dedents this; the comment keeps the list's indentation)
  - id: {ADMIN_ID}
    key: {ADMIN_KEY}
    admin: true
"""
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def ops_gateway(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    gw = start_gateway(basic_config(fake, ADMIN_CLIENT))
    with gw.client() as client:  # some traffic, so the metrics carry client labels
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    return gw


def get(gw: Gateway, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(gw.base_url + path, headers=headers or {}, timeout=10)


def assert_no_secrets(gw: Gateway, *texts: str) -> None:
    for text in (*texts, gw.logs()):
        for secret in (CLIENT_KEY, ADMIN_KEY, MASTER_KEY, WRONG_KEY):
            assert secret not in text


# --- /metrics ----------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, bearer(WRONG_KEY), {"x-api-key": WRONG_KEY}, {"Authorization": "Basic abc"}],
                         ids=["no-key", "wrong-bearer", "wrong-x-api-key", "not-bearer"])
def test_metrics_without_a_valid_key_is_401(ops_gateway: Gateway, headers: dict[str, str]) -> None:
    response = get(ops_gateway, "/metrics", headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "gateway_requests_total" not in response.text and CLIENT_ID not in response.text
    assert_no_secrets(ops_gateway, response.text)


@pytest.mark.parametrize("headers", [bearer(CLIENT_KEY), {"x-api-key": CLIENT_KEY}], ids=["bearer", "x-api-key"])
def test_metrics_with_a_client_key_is_403(ops_gateway: Gateway, headers: dict[str, str]) -> None:
    response = get(ops_gateway, "/metrics", headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "authorization_error" and error["code"] == "admin_required"
    assert "admin" in error["message"]
    assert "gateway_requests_total" not in response.text
    assert_no_secrets(ops_gateway, response.text)


@pytest.mark.parametrize("headers", [bearer(ADMIN_KEY), {"x-api-key": ADMIN_KEY}, bearer(MASTER_KEY),
                                     {"x-api-key": MASTER_KEY}],
                         ids=["admin-bearer", "admin-x-api-key", "master-bearer", "master-x-api-key"])
def test_metrics_with_an_admin_or_the_master_key_is_200(ops_gateway: Gateway, headers: dict[str, str]) -> None:
    response = get(ops_gateway, "/metrics", headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert f'client="{CLIENT_ID}"' in response.text
    assert_no_secrets(ops_gateway, response.text)


def test_public_metrics_opens_metrics_and_follows_reloads(start_gateway: Callable[..., Gateway],
                                                          fake: FakeUpstream) -> None:
    listen = '  listen: "127.0.0.1:2906"\n'
    public = basic_config(fake, ADMIN_CLIENT).replace(listen, listen + "  public_metrics: true\n")
    gw = start_gateway(public)
    opened = get(gw, "/metrics")
    assert opened.status_code == 200 and "gateway_config_reloads_total" in opened.text
    # the readiness details stay private even when the metrics are public
    assert get(gw, "/health/readiness").json() == {"status": "ready"}
    version = gw.readiness()["config"]["version"]
    gw.write_config(basic_config(fake, ADMIN_CLIENT))  # public_metrics back to its default, false
    gw.wait_for_version_change(version)
    assert get(gw, "/metrics").status_code == 401
    assert get(gw, "/metrics", bearer(ADMIN_KEY)).status_code == 200


# --- /health/readiness -------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, bearer(CLIENT_KEY), {"x-api-key": CLIENT_KEY}, bearer(WRONG_KEY)],
                         ids=["no-key", "client-bearer", "client-x-api-key", "wrong-key"])
def test_readiness_without_an_admin_key_says_only_ready(ops_gateway: Gateway, headers: dict[str, str]) -> None:
    # a reload error puts the config path and the error into the details
    version = ops_gateway.readiness()["config"]["version"]
    ops_gateway.config_path.write_text("llm_providers: [unclosed\n")
    deadline = time.monotonic() + 10
    while ops_gateway.readiness()["last_reload"]["result"] != "error" and time.monotonic() < deadline:
        time.sleep(0.05)
    details = ops_gateway.readiness()
    assert details["last_reload"]["error"] and details["config"]["version"] == version
    response = get(ops_gateway, "/health/readiness", headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}
    for private in (CLIENT_ID, ADMIN_ID, str(ops_gateway.config_path), "fake#1", "unclosed", version):
        assert private not in response.text
    assert_no_secrets(ops_gateway, response.text)


@pytest.mark.parametrize("headers", [bearer(ADMIN_KEY), {"x-api-key": ADMIN_KEY}, bearer(MASTER_KEY)],
                         ids=["admin-bearer", "admin-x-api-key", "master"])
def test_readiness_details_for_admin_and_master(ops_gateway: Gateway, headers: dict[str, str]) -> None:
    response = get(ops_gateway, "/health/readiness", headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["config"]["path"] == str(ops_gateway.config_path)
    assert body["config"]["clients"] == 2
    assert body["keys"] and all("sk-" not in str(state) for state in body["keys"])
    assert body["last_reload"]["result"] == "initial"
    assert_no_secrets(ops_gateway, response.text)


def test_health_and_liveliness_stay_open(ops_gateway: Gateway) -> None:
    assert get(ops_gateway, "/health").json() == {"status": "healthy"}
    for path in ("/health/liveliness", "/health/liveness"):
        alive = get(ops_gateway, path)
        # the appliance document's check prints the body and expects "I'm alive!" (LiteLLM's words)
        assert (alive.status_code, alive.text) == (200, "I'm alive!"), path
        assert alive.headers["content-type"].startswith("text/plain"), path
