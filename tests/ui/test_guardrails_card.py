"""The overview's guardrails card in a real browser: the configured guards and what each did since
start (blocked, masked, ...), from ``/admin/v1/status``; never the content."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, MASTER_KEY, Gateway, basic_config
from tests.fake_upstream import FakeUpstream
from tests.ui.conftest import UI_PASSWORD, UI_USER
from tests.ui.test_browser import CHROMIUM, browser, page, shot, signed_in, sync_api  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
KEY = "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5"
GUARDS = """
guardrails:
  default: [secrets, pii]
  guards:
    - {name: secrets, type: secrets, on: input, action: block}
    - {name: pii, type: pii, on: input, action: mask}
"""


@pytest.fixture
def guarded_ui(tmp_path: Path, fake: FakeUpstream) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path, basic_config(fake) + GUARDS)
    gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\nUI_USERNAME={UI_USER}\nUI_PASSWORD={UI_PASSWORD}\n")
    gateway.start()
    yield gateway
    gateway.stop()


def test_the_overview_shows_what_the_guardrails_did(guarded_ui: Gateway, page: Any) -> None:  # noqa: F811
    with guarded_ui.client(CLIENT_KEY) as client:
        assert client.post("/v1/chat/completions", json={"model": "fast", "messages": [
            {"role": "user", "content": f"key {KEY}"}]}).status_code == 400
        for _ in range(2):
            assert client.post("/v1/chat/completions", json={"model": "fast", "messages": [
                {"role": "user", "content": "mail jane@example.com"}]}).status_code == 200
    status = httpx.get(guarded_ui.base_url + "/admin/v1/status", headers=ADMIN_HEADERS, timeout=10).json()
    assert status["guardrails"]["default"] == ["secrets", "pii"]
    assert {(a["guardrail"], a["action"], a["count"]) for a in status["guardrails"]["actions"]} == {
        ("secrets", "block", 1), ("pii", "mask", 2)}
    signed_in(page, guarded_ui, "overview")
    card = page.get_by_test_id("guardrails")
    sync_api.expect(card).to_contain_text("3 actions since start", timeout=15_000)
    sync_api.expect(card.locator("tr[data-guardrail=secrets] td[data-action=block]")).to_have_text("1")
    sync_api.expect(card.locator("tr[data-guardrail=pii] td[data-action=mask]")).to_have_text("2")
    assert KEY not in page.content() and "jane@example.com" not in page.content()
    shot(page, "overview-guardrails")
    assert page.problems == []
