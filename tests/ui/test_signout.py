"""Sign-out over HTTP against the real gateway: a signed-out session stays refused after a restart
(one process on the default SQLite store) and by every worker, before and after a restart
(two workers on Redis), while a session nobody signed out keeps working; and what a sign-out does
while the store cannot be reached."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.fake_upstream import FakeUpstream
from tests.store.servers import RedisServer
from tests.ui.conftest import login, session_client, session_of, start_ui_gateway


def sign_in_and_out(gw: Gateway) -> str:
    """The cookie of a session that signed out (the browser would have forgotten it; a copy did not)."""
    with session_client(gw) as (client, csrf):
        cookie = client.cookies["gw_session"]
        assert session_of(gw, cookie)["signed_in"] is True
        response = client.post("/ui/api/logout", headers={"x-csrf-token": csrf})
        assert response.status_code == 200, response.text
    return cookie


def admin_status(gw: Gateway, cookie: str) -> int:
    response = httpx.get(gw.base_url + "/admin/v1/status", cookies={"gw_session": cookie}, timeout=10)
    return response.status_code


async def _sessions(gw: Gateway, cookie: str, count: int) -> list[bool]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=gw.base_url, limits=limits, timeout=30,
                                 cookies={"gw_session": cookie}) as client:
        responses = await asyncio.gather(*(client.get("/ui/api/session") for _ in range(count)))
    assert all(r.status_code == 200 for r in responses)
    return [bool(r.json()["signed_in"]) for r in responses]


def sessions(gw: Gateway, cookie: str, count: int = 40) -> list[bool]:
    """Whether ``cookie`` is a session, asked ``count`` times at once on as many connections (so
    every worker answers some)."""
    return asyncio.run(_sessions(gw, cookie, count))


def test_a_signed_out_session_stays_signed_out_after_a_restart(tmp_path: Path, fake: FakeUpstream) -> None:
    gw = start_ui_gateway(tmp_path, fake)
    try:
        signed_out = sign_in_and_out(gw)
        kept = login(gw, {"key": MASTER_KEY}).cookies["gw_session"]
        assert session_of(gw, signed_out)["signed_in"] is False
        gw.stop()
        gw.start()
        assert session_of(gw, signed_out)["signed_in"] is False
        assert admin_status(gw, signed_out) == 401
        assert session_of(gw, kept)["signed_in"] is True  # the restart itself ends no session
        assert admin_status(gw, kept) == 200
    finally:
        gw.stop()


@pytest.mark.slow
def test_a_signed_out_session_is_refused_by_every_worker(tmp_path: Path, fake: FakeUpstream,
                                                         redis_server: RedisServer) -> None:
    storage = f'storage: {{runtime: {{type: redis, addr: "{redis_server.addr}", prefix: "signout:"}}}}\n'
    gw = start_ui_gateway(tmp_path, fake, storage=storage, workers=2)
    try:
        signed_out = sign_in_and_out(gw)
        kept = login(gw, {"key": MASTER_KEY}).cookies["gw_session"]
        assert all(sessions(gw, kept))  # every worker accepts a session
        assert not any(sessions(gw, signed_out))
        gw.stop()
        gw.start()
        assert not any(sessions(gw, signed_out))
        assert all(sessions(gw, kept))
    finally:
        gw.stop()


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_signing_out_while_the_store_is_unreachable(tmp_path: Path, fake: FakeUpstream, mode: str) -> None:
    redis = RedisServer().start()
    storage = f'storage: {{runtime: {{type: redis, addr: "{redis.addr}"}}, on_unavailable: {mode}}}\n'
    gw = start_ui_gateway(tmp_path, fake, storage=storage)
    try:
        with session_client(gw) as (client, csrf):
            other = login(gw, {"key": MASTER_KEY}).cookies["gw_session"]
            signed_out = client.cookies["gw_session"]
            redis.stop()
            response = client.post("/ui/api/logout", headers={"x-csrf-token": csrf})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "store_unavailable"
            assert "gw_session" not in client.cookies  # the browser forgets the cookie all the same
        if mode == "open":  # this process knows what it signed out; other sessions keep working
            assert session_of(gw, signed_out)["signed_in"] is False
            assert session_of(gw, other)["signed_in"] is True
        else:  # a session that cannot be checked is not accepted
            for cookie in (signed_out, other):
                response = httpx.get(gw.base_url + "/ui/api/session", cookies={"gw_session": cookie}, timeout=10)
                assert response.status_code == 503
                assert admin_status(gw, cookie) == 503
    finally:
        gw.stop()
        redis.cleanup()
