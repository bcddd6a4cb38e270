"""The dashboard's MCP page in a real browser: the servers' health (a down one shown as such), a
server's tools, and the tool calls per client."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway, free_port
from tests.mcp_helpers import McpUpstream, client_entry, http_server, mcp_config, mcp_rows, sdk_client, wait_for
from tests.ui.conftest import UI_PASSWORD, UI_USER
from tests.ui.test_browser import CHROMIUM, browser, page, shot, sign_in, sync_api  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")


@pytest.fixture
def mcp_gateway(tmp_path: Path) -> Any:
    upstream = McpUpstream(tmp_path, "demo")
    config = mcp_config([http_server("demo", upstream), f"  - id: gone\n    url: http://127.0.0.1:{free_port()}/mcp\n"],
                        [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')])
    gateway = Gateway(tmp_path, config, {"MCP_UPSTREAM_TOKEN": "x"})
    gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\nUI_USERNAME={UI_USER}\nUI_PASSWORD={UI_PASSWORD}\n")
    gateway.start()
    yield gateway
    gateway.stop()
    upstream.stop()


def test_the_mcp_page_shows_health_tools_and_calls(mcp_gateway: Gateway, page: Any) -> None:  # noqa: F811
    async def call() -> None:
        async with sdk_client(mcp_gateway.base_url + "/mcp") as client:
            await client.call_tool("demo__add", {"a": 1, "b": 2})

    worker = threading.Thread(target=anyio.run, args=(call,))  # Playwright's loop runs in this thread
    worker.start()
    worker.join(60)
    wait_for(lambda: mcp_rows(mcp_gateway), what="the ledger row")
    expect = sync_api.expect
    sign_in(page, mcp_gateway)
    expect(page.locator("#app")).to_be_visible(timeout=15_000)
    page.locator("nav a[data-page=mcp]").click()
    expect(page.locator("#page")).to_have_attribute("data-page", "mcp")
    demo, gone = page.locator("tr[data-mcp-server=demo]"), page.locator("tr[data-mcp-server=gone]")
    expect(demo.get_by_test_id("mcp-health")).to_have_text("up", timeout=20_000)
    expect(gone.get_by_test_id("mcp-health")).to_have_text("down", timeout=20_000)
    expect(page.locator(".mcp-calls")).to_contain_text("app", timeout=15_000)
    expect(page.locator(".mcp-calls")).to_contain_text("add")
    demo.get_by_role("button", name="Tools").click()
    expect(page.locator(".tools-cell").first).to_contain_text("countdown", timeout=15_000)
    shot(page, "mcp")
    assert page.problems == []
