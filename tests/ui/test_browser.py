"""The dashboard in a real browser: Playwright for Python driving Debian's chromium.

Never ``playwright install``: the browser is /usr/bin/chromium. Screenshots go to
tests/ui/artifacts/screenshots/ (gitignored); the overview's is copied to docs/ for the README
when that picture is missing or ``UPDATE_README_SCREENSHOT=1`` is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY, REPO, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.ui.conftest import ARTIFACTS, UI_PASSWORD, UI_USER, admin_api_available, start_ui_gateway

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ARTIFACTS / "screenshots"
README_SHOT = REPO / "docs" / "dashboard-overview.png"
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is not installed (Debian: apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright package is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "Refused to" in m.text else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.problems = problems  # read by the tests: CSP violations and uncaught script errors
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, gw: Gateway, password: str = UI_PASSWORD) -> None:
    page.goto(gw.base_url + "/ui")
    page.get_by_label("Username").fill(UI_USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def send_traffic(gw: Gateway, n: int = 5) -> None:
    with gw.client(CLIENT_KEY) as client:
        for _ in range(n):
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_sign_in_see_the_overview_and_sign_out(ui_gateway: Gateway, page: Any) -> None:
    send_traffic(ui_gateway)
    sign_in(page, ui_gateway)
    expect = sync_api.expect
    expect(page.locator("#app")).to_be_visible(timeout=15_000)
    expect(page.locator("#who")).to_have_text(f"user:{UI_USER}")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_test_id("kpis")).to_contain_text("Requests / min", timeout=15_000)
    expect(page.get_by_test_id("kpis")).to_contain_text("Success rate")
    expect(page.locator(".chart")).to_have_count(5, timeout=15_000)
    if admin_api_available(ui_gateway):  # with the admin API: real numbers and drawn charts
        expect(page.get_by_test_id("config-version")).not_to_have_text("–", timeout=15_000)
        expect(page.locator(".chart canvas").first).to_be_visible(timeout=15_000)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["gw_session"]["httpOnly"] is True and cookies["gw_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # the session is out of the page's reach
    time.sleep(0.5)  # let the charts settle before the picture
    overview = shot(page, "overview")
    if not README_SHOT.exists() or os.environ.get("UPDATE_README_SCREENSHOT") == "1":
        README_SHOT.parent.mkdir(exist_ok=True)
        shutil.copy(overview, README_SHOT)
    for name in ("providers", "clients", "log"):
        page.locator(f"nav a[data-page={name}]").click()
        expect(page.locator("#page")).to_have_attribute("data-page", name)
        page.wait_for_load_state("networkidle")
        shot(page, name)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.locator("nav a[data-page=overview]").click()
    expect(page.get_by_test_id("kpis")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "overview-phone")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("Signed out.")
    assert "gw_session" not in {c["name"] for c in page.context.cookies()}
    page.reload()
    expect(page.locator("#login")).to_be_visible()  # still signed out after a reload
    assert page.problems == []


def test_a_wrong_password_is_rejected(ui_gateway: Gateway, page: Any) -> None:
    sign_in(page, ui_gateway, password="not-the-password")
    expect = sync_api.expect
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.", timeout=15_000)
    expect(page.locator("#app")).to_be_hidden()
    assert "gw_session" not in {c["name"] for c in page.context.cookies()}
    shot(page, "login-wrong-password")
    assert page.problems == []


# --- with the admin API: these run once /admin/v1 exists -----------------------------------------

@pytest.fixture
def admin_gateway(tmp_path: Path, fake: FakeUpstream) -> Iterator[Gateway]:
    gw = start_ui_gateway(tmp_path, fake)
    try:
        if not admin_api_available(gw):
            pytest.skip("the admin API (/admin/v1) is not in this gateway")
        yield gw
    finally:
        gw.stop()


def signed_in(page: Any, gw: Gateway, hash_: str) -> None:
    sign_in(page, gw)
    sync_api.expect(page.locator("#app")).to_be_visible(timeout=15_000)
    page.goto(f"{gw.base_url}/ui#{hash_}")
    sync_api.expect(page.locator("#page")).to_have_attribute("data-page", hash_)


def test_numbers_change_after_requests_are_sent(admin_gateway: Gateway, page: Any) -> None:
    signed_in(page, admin_gateway, "overview")
    kpis = page.get_by_test_id("kpis")
    sync_api.expect(kpis).to_contain_text("0 in 1 h", timeout=15_000)
    send_traffic(admin_gateway, 4)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "4 in 1 h" not in kpis.inner_text():
        time.sleep(1)
        page.reload()
        sync_api.expect(kpis).to_be_visible(timeout=15_000)
    sync_api.expect(kpis).to_contain_text("4 in 1 h")
    sync_api.expect(page.locator(".chart canvas").first).to_be_visible()
    shot(page, "overview-with-traffic")


def test_the_overview_shows_the_cache_hit_rate(admin_gateway: Gateway, page: Any) -> None:
    signed_in(page, admin_gateway, "overview")
    sync_api.expect(page.get_by_test_id("cache-lookups")).to_have_text("no lookups yet", timeout=15_000)
    with admin_gateway.client(CLIENT_KEY) as client:
        answers = [client.post("/v1/chat/completions", json={**CHAT, "model": "cached"}) for _ in range(2)]
    assert [a.headers.get("x-cache") for a in answers] == ["miss", "hit"]
    page.reload()
    sync_api.expect(page.get_by_test_id("cache-hit-rate")).to_have_text("50.0%", timeout=15_000)
    sync_api.expect(page.get_by_test_id("cache-lookups")).to_contain_text("1 hits, 1 misses")
    header = page.get_by_role("columnheader", name="Cache hits")  # the breakdown, once the ledger has the rows
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not header.is_visible():
        time.sleep(1)
        page.reload()
        sync_api.expect(page.get_by_test_id("kpis")).to_be_visible(timeout=15_000)
    sync_api.expect(header).to_be_visible()
    sync_api.expect(page.get_by_test_id("cache-saved")).to_contain_text("saved by 1 hits in this period")
    shot(page, "overview-cache")
    assert page.problems == []


def test_create_a_client_in_the_browser_and_use_its_key_with_the_openai_sdk(admin_gateway: Gateway,
                                                                           page: Any) -> None:
    openai = pytest.importorskip("openai")
    signed_in(page, admin_gateway, "clients")
    page.get_by_role("button", name="New client").click()
    page.get_by_label("Client id").fill("browser-app")
    page.get_by_label("Requests / min").fill("30")
    page.get_by_role("button", name="Create").click()
    field = page.get_by_test_id("new-key")
    sync_api.expect(field).to_be_visible(timeout=15_000)
    key = field.input_value()
    assert key.startswith("sk-")
    shot(page, "clients-new-key")
    page.get_by_role("button", name="Done").click()
    sync_api.expect(page.locator("tr[data-client='browser-app']")).to_be_visible()
    assert key not in page.content()
    page.reload()
    sync_api.expect(page.locator("tr[data-client='browser-app']")).to_be_visible(timeout=15_000)
    assert key not in page.content()  # never shown again
    sdk = openai.OpenAI(base_url=admin_gateway.base_url + "/v1", api_key=key, max_retries=0)
    answer = sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content


def test_add_a_provider_key_in_the_browser(admin_gateway: Gateway, page: Any) -> None:
    new_key = "sk-upstream-key-three-333333"
    signed_in(page, admin_gateway, "providers")
    rows = page.locator("[data-provider='fake'] tbody tr")
    sync_api.expect(rows).to_have_count(2, timeout=15_000)
    field = page.get_by_label("New API key for fake")
    field.fill(new_key)
    field.press("Enter")
    sync_api.expect(page.locator("#banner")).to_contain_text("Added key", timeout=15_000)
    sync_api.expect(rows).to_have_count(3, timeout=15_000)
    assert new_key not in page.content()
    assert new_key in admin_gateway.env_path.read_text()
    shot(page, "providers-key-added")


def test_a_429_cools_a_key_on_the_providers_page(admin_gateway: Gateway, fake: FakeUpstream, page: Any) -> None:
    fake.set_default(Behaviour(status=429, headers={"Retry-After": "120"}), key="sk-upstream-key-one-111111")
    send_traffic(admin_gateway, 2)  # one of them meets the first key, which cools; the other key answers
    signed_in(page, admin_gateway, "providers")
    row = page.locator("[data-provider='fake'] tr[data-key='fake#1']")
    sync_api.expect(row.get_by_test_id("key-state")).to_contain_text("cooling", timeout=15_000)
    sync_api.expect(row.get_by_test_id("key-state")).to_contain_text("until")
    shot(page, "providers-cooling")


def test_the_overview_shows_a_failing_sink(tmp_path: Path, fake: FakeUpstream, page: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on: every POST of the sink fails
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    sinks = f"""observability:
  sinks:
    - {{type: webhook, name: hook, url: "http://127.0.0.1:{closed}/ingest", interval_s: 0.05, retries: 0}}
    - {{type: file, path: {tmp_path / "records.jsonl"}, interval_s: 0.05}}
"""
    gw = start_ui_gateway(tmp_path / "gw", fake, storage=sinks)
    try:
        send_traffic(gw, 2)
        signed_in(page, gw, "overview")
        hook = page.get_by_test_id("sink-hook")
        sync_api.expect(hook).to_contain_text("failing", timeout=15_000)
        sync_api.expect(hook).to_contain_text(f"POST http://127.0.0.1:{closed}: no answer (ConnectError)")
        sync_api.expect(page.get_by_test_id("sink-file")).to_contain_text("ok")
        sync_api.expect(page.get_by_test_id("sink-file")).to_contain_text("2 delivered")
        shot(page, "overview-sinks")
        assert page.problems == []
    finally:
        gw.stop()


def test_the_live_log_shows_cache_and_reasoning_tokens(admin_gateway: Gateway, fake: FakeUpstream, page: Any) -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
             "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 32}}
    fake.script(Behaviour(body={"id": "chatcmpl-u1", "object": "chat.completion", "created": 1, "model": "x",
                                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                             "finish_reason": "stop"}], "usage": usage}))
    send_traffic(admin_gateway, 1)
    signed_in(page, admin_gateway, "log")
    details = page.get_by_test_id("token-details")
    deadline = time.monotonic() + 30  # the ledger writes its rows in batches
    while time.monotonic() < deadline and details.count() == 0:
        time.sleep(1)
        page.reload()
        sync_api.expect(page.locator("#page")).to_have_attribute("data-page", "log", timeout=15_000)
    sync_api.expect(details.first).to_have_text("1,024 cache read · 32 reasoning")
    sync_api.expect(page.locator("table.log tbody tr").first).to_contain_text("1,200 / 40")
    shot(page, "log-token-details")
    assert page.problems == []
