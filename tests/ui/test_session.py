"""Dashboard sign-in over HTTP against the real gateway: who may sign in, the cookie's flags and
expiry, wrong credentials, sign-out, CSRF, and the signing secret on disk (the throttle on
password guesses: test_signin_throttle.py; sign-out across workers and restarts: test_signout.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway
from tests.fake_upstream import FakeUpstream
from tests.ui.conftest import (
    ADMIN_ID,
    ADMIN_KEY,
    UI_PASSWORD,
    UI_USER,
    admin_api_available,
    login,
    session_client,
    session_of,
    start_ui_gateway,
)

WRONG = "sk-test-wrong-dashboard-secret-999"


def set_cookie_header(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("gw_session=")]
    return header


def cookie_attributes(header: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(gw: Gateway, payload: dict[str, object]) -> str:
    """A cookie signed with the secret the gateway keeps in its data directory."""
    secret = bytes.fromhex((gw.workdir / "data" / "ui-session.key").read_text().strip())
    signed = "v1." + b64(orjson.dumps(payload))
    return signed + "." + b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def assert_no_secret_logged(gw: Gateway) -> None:
    logs = gw.logs()
    for secret in (MASTER_KEY, ADMIN_KEY, CLIENT_KEY, UI_PASSWORD, WRONG):
        assert secret not in logs


# --- who may sign in ---------------------------------------------------------------------------

def test_login_with_the_master_key_sets_a_signed_http_only_strict_cookie(ui_gateway: Gateway) -> None:
    response = login(ui_gateway, {"key": MASTER_KEY})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["signed_in"] is True and body["who"] == "master" and len(body["csrf_token"]) >= 32
    header = set_cookie_header(response)
    attributes = cookie_attributes(header)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/"
    assert int(attributes["max-age"]) == 12 * 3600
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie would never come back
    assert MASTER_KEY not in header and MASTER_KEY not in response.text
    assert abs(body["expires_at"] - (time.time() + 12 * 3600)) < 120
    session = session_of(ui_gateway, response.cookies["gw_session"])
    assert session["signed_in"] is True and session["who"] == "master"
    assert session["csrf_token"] == body["csrf_token"]


def test_login_with_an_admin_client_key(ui_gateway: Gateway) -> None:
    response = login(ui_gateway, {"key": ADMIN_KEY})
    assert response.status_code == 200, response.text
    assert response.json()["who"] == f"client:{ADMIN_ID}"


def test_login_with_the_ui_username_and_password(ui_gateway: Gateway) -> None:
    response = login(ui_gateway, {"username": UI_USER, "password": UI_PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["who"] == f"user:{UI_USER}"
    assert session_of(ui_gateway, response.cookies["gw_session"])["signed_in"] is True


def test_login_with_a_plain_client_key_is_refused(ui_gateway: Gateway) -> None:
    response = login(ui_gateway, {"key": CLIENT_KEY})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"
    assert "gw_session" not in response.cookies


def test_secure_flag_when_the_request_came_over_https(ui_gateway: Gateway) -> None:
    response = login(ui_gateway, {"key": MASTER_KEY}, headers={"x-forwarded-proto": "https"})
    assert response.status_code == 200
    assert "secure" in cookie_attributes(set_cookie_header(response))


def test_login_from_another_site_is_refused(ui_gateway: Gateway) -> None:
    for site in ("cross-site", "same-site"):
        response = login(ui_gateway, {"key": MASTER_KEY},
                         headers={"origin": "https://evil.example", "sec-fetch-site": site})
        assert response.status_code == 403
        assert "gw_session" not in response.cookies


def test_login_through_a_proxy_that_rewrites_host(ui_gateway: Gateway) -> None:
    headers = {"host": "llm_gateway", "origin": "https://gw.example.com", "sec-fetch-site": "same-origin",
               "x-forwarded-proto": "https"}
    response = login(ui_gateway, {"username": UI_USER, "password": UI_PASSWORD}, headers=headers)
    assert response.status_code == 200
    assert "secure" in cookie_attributes(set_cookie_header(response))


# --- wrong credentials -------------------------------------------------------------------------

@pytest.mark.parametrize("body", [{"username": UI_USER, "password": WRONG},
                                  {"username": "root", "password": UI_PASSWORD},
                                  {"key": WRONG}], ids=["wrong-password", "wrong-user", "wrong-key"])
def test_wrong_credentials_are_401_and_logged_without_the_secret(ui_gateway: Gateway, body: dict[str, str]) -> None:
    response = login(ui_gateway, body)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert "gw_session" not in response.cookies
    assert "dashboard sign-in refused" in ui_gateway.logs()
    assert_no_secret_logged(ui_gateway)


def test_a_malformed_login_is_400(ui_gateway: Gateway) -> None:
    assert login(ui_gateway, {"username": UI_USER}).status_code == 400
    response = httpx.post(ui_gateway.base_url + "/ui/api/login", content=b"key=x",
                          headers={"content-type": "application/x-www-form-urlencoded"}, timeout=10)
    assert response.status_code == 400


# --- the cookie itself -------------------------------------------------------------------------

def test_an_expired_or_tampered_cookie_is_refused(ui_gateway: Gateway) -> None:
    response = login(ui_gateway, {"key": MASTER_KEY})
    token = response.cookies["gw_session"]
    payload = orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert session_of(ui_gateway, forge(ui_gateway, payload))["signed_in"] is True  # the forging is right
    expired = forge(ui_gateway, {**payload, "exp": int(time.time()) - 1})
    assert session_of(ui_gateway, expired)["signed_in"] is False
    version, body, signature = token.split(".")
    other = b64(orjson.dumps({**payload, "who": f"client:{ADMIN_ID}"}))
    assert session_of(ui_gateway, f"{version}.{other}.{signature}")["signed_in"] is False
    assert session_of(ui_gateway, f"{version}.{body}.{signature[:-2]}AA")["signed_in"] is False


def test_the_signing_secret_is_kept_mode_600_and_survives_a_restart(tmp_path: Path, fake: FakeUpstream) -> None:
    gw = start_ui_gateway(tmp_path, fake)
    try:
        secret = tmp_path / "data" / "ui-session.key"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        token = login(gw, {"key": MASTER_KEY}).cookies["gw_session"]
        before = secret.read_text()
        gw.stop()
        gw.start()
        assert secret.read_text() == before
        assert session_of(gw, token)["signed_in"] is True
    finally:
        gw.stop()


def test_changing_the_credential_ends_its_sessions(tmp_path: Path, fake: FakeUpstream) -> None:
    gw = start_ui_gateway(tmp_path, fake)
    try:
        user = login(gw, {"username": UI_USER, "password": UI_PASSWORD}).cookies["gw_session"]
        master = login(gw, {"key": MASTER_KEY}).cookies["gw_session"]
        new_master = "sk-test-rotated-master-key-987654"
        salt = os.urandom(16)
        hashed = "pbkdf2_sha256$1000$" + b64(salt) + "$" + b64(hashlib.pbkdf2_hmac("sha256", b"n3w-pass", salt, 1000))
        gw.env_path.write_text(f"GATEWAY_MASTER_KEY={new_master}\nUI_USERNAME={UI_USER}\nUI_PASSWORD={hashed}\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and session_of(gw, master)["signed_in"]:
            time.sleep(0.1)
        assert session_of(gw, master)["signed_in"] is False
        assert session_of(gw, user)["signed_in"] is False
        assert login(gw, {"username": UI_USER, "password": "n3w-pass"}).status_code == 200  # a hashed password
        assert login(gw, {"key": new_master}).status_code == 200
    finally:
        gw.stop()


# --- sign-out and CSRF -------------------------------------------------------------------------

def test_logout_needs_the_csrf_header_then_clears_the_cookie(ui_gateway: Gateway) -> None:
    with session_client(ui_gateway) as (client, csrf):
        token = client.cookies["gw_session"]
        refused = client.post("/ui/api/logout")
        assert refused.status_code == 403
        assert client.get("/ui/api/session").json()["signed_in"] is True
        response = client.post("/ui/api/logout", headers={"x-csrf-token": csrf})
        assert response.status_code == 200
        attributes = cookie_attributes(set_cookie_header(response))
        assert attributes.get("max-age") == "0" or "1970" in attributes.get("expires", "")
        assert session_of(ui_gateway, token)["signed_in"] is False  # signed out, not only forgotten


def test_static_and_session_answers_carry_a_strict_csp(ui_gateway: Gateway) -> None:
    response = httpx.get(ui_gateway.base_url + "/ui/api/session", timeout=10)
    assert response.json() == {"signed_in": False, "csrf_token": "", "who": None, "expires_at": None}
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


# --- the admin API accepts the session: these run once /admin/v1 exists ------------------------

@pytest.fixture
def admin_api(ui_gateway: Gateway) -> Gateway:
    if not admin_api_available(ui_gateway):
        pytest.skip("the admin API (/admin/v1) is not in this gateway")
    return ui_gateway


def test_admin_api_accepts_a_dashboard_session(admin_api: Gateway) -> None:
    with session_client(admin_api) as (client, _):
        assert client.get("/admin/v1/status").status_code == 200
        assert client.get("/admin/v1/clients").status_code == 200
    assert httpx.get(admin_api.base_url + "/admin/v1/status", timeout=10).status_code == 401


def test_admin_api_refuses_a_mutating_session_call_without_the_csrf_header(admin_api: Gateway) -> None:
    with session_client(admin_api) as (client, csrf):
        refused = client.post("/admin/v1/clients", json={"client_id": "csrf-probe"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf_failed"
        wrong = client.post("/admin/v1/clients", json={"client_id": "csrf-probe"}, headers={"x-csrf-token": "x" * 43})
        assert wrong.status_code == 403
        created = client.post("/admin/v1/clients", json={"client_id": "csrf-probe"}, headers={"x-csrf-token": csrf})
        assert created.status_code == 201, created.text
        assert client.delete("/admin/v1/clients/csrf-probe", headers={"x-csrf-token": csrf}).status_code == 200


def test_admin_api_refuses_the_session_after_logout(admin_api: Gateway) -> None:
    with session_client(admin_api) as (client, csrf):
        token = client.cookies["gw_session"]
        assert client.post("/ui/api/logout", headers={"x-csrf-token": csrf}).status_code == 200
    response = httpx.get(admin_api.base_url + "/admin/v1/status", cookies={"gw_session": token}, timeout=10)
    assert response.status_code == 401


def test_an_admin_client_created_through_the_admin_api_can_sign_in(admin_api: Gateway) -> None:
    created = httpx.post(admin_api.base_url + "/admin/v1/clients", headers={"authorization": f"Bearer {MASTER_KEY}"},
                         json={"client_id": "ops-console", "admin": True}, timeout=10)
    assert created.status_code == 201, created.text
    response = login(admin_api, {"key": created.json()["api_key"]})
    assert response.status_code == 200, response.text
    assert response.json()["who"] == "client:ops-console"
    plain = httpx.post(admin_api.base_url + "/admin/v1/clients", headers={"authorization": f"Bearer {MASTER_KEY}"},
                       json={"client_id": "plain-app"}, timeout=10)
    assert login(admin_api, {"key": plain.json()["api_key"]}).status_code == 403
