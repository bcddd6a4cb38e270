"""A gateway for the dashboard tests: the master key, an admin client, a plain client and the
dashboard's own username and password in its ``.env``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream

ADMIN_KEY = "sk-test-ui-admin-client-key-0123456789"
ADMIN_ID = "ops"
UI_USER = "admin"
UI_PASSWORD = "correct-horse-battery-staple-41"
ADMIN_CLIENT = f"""# one more client (basic_config dedents this; the comment keeps the list's indentation)
  - id: {ADMIN_ID}
    key: {ADMIN_KEY}
    admin: true
"""
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def start_ui_gateway(workdir: Path, fake: FakeUpstream, password: str = UI_PASSWORD, storage: str = "",
                     workers: int = 1) -> Gateway:
    """``storage``: a top-level ``storage:`` line of YAML (default: the default store, SQLite)."""
    cached = "  cached: {targets: [fake:fake-gpt-4o], cache: {ttl_s: 600, max_mb: 1}}\n"  # an alias with a cache
    config = basic_config(fake, ADMIN_CLIENT).replace("model_aliases:\n", "model_aliases:\n" + cached, 1) + storage
    gw = Gateway(workdir, config, workers=workers)
    gw.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\nUI_USERNAME={UI_USER}\nUI_PASSWORD={password}\n")
    return gw.start()


@pytest.fixture(scope="module")
def ui_gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_ui_gateway(tmp_path_factory.mktemp("ui"), fake_server)
    try:
        yield gw
    finally:
        gw.stop()


def login(gw: Gateway, body: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(gw.base_url + "/ui/api/login", json=body, headers=headers or {}, timeout=15)


def session_of(gw: Gateway, cookie: str) -> dict[str, object]:
    """``GET /ui/api/session`` with ``cookie`` as the session cookie."""
    response = httpx.get(gw.base_url + "/ui/api/session", cookies={"gw_session": cookie}, timeout=10)
    assert response.status_code == 200
    return response.json()


@contextmanager
def session_client(gw: Gateway, body: dict[str, str] | None = None) -> Iterator[tuple[httpx.Client, str]]:
    """An httpx client holding a dashboard session cookie, and the session's CSRF token."""
    with httpx.Client(base_url=gw.base_url, timeout=15) as client:
        response = client.post("/ui/api/login", json=body or {"username": UI_USER, "password": UI_PASSWORD})
        assert response.status_code == 200, response.text
        yield client, response.json()["csrf_token"]


def admin_api_available(gw: Gateway) -> bool:
    """True when the admin API answers at /admin/v1."""
    response = httpx.get(gw.base_url + "/admin/v1/status", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                         timeout=10)
    return response.status_code != 404
