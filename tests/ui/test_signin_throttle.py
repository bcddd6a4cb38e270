"""The throttle on dashboard password sign-ins, over HTTP against the real gateway: failures are
counted per remote address (loopback has 127.0.0.0/8 to send from) and per username, the 429
comes before the password is checked, two workers count together through Redis, and the
lockout ends by itself."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.fake_upstream import FakeUpstream
from tests.store.servers import RedisServer
from tests.ui.conftest import UI_PASSWORD, UI_USER, login, start_ui_gateway

RIGHT = {"username": UI_USER, "password": UI_PASSWORD}
BURST = 5  # failures that are answered 401 before the 429s start
BURST_WINDOW_S = 30


def slow_hash(password: str, iterations: int = 1_000_000) -> str:
    """``UI_PASSWORD`` as a PBKDF2 hash that costs about a quarter of a second to check."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"pbkdf2_sha256${iterations}${b64(salt)}${b64(digest)}"


def login_from(gw: Gateway, source: str, body: dict[str, str]) -> httpx.Response:
    """A sign-in sent from ``source``, a loopback address of this machine."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as client:
        return client.post(gw.base_url + "/ui/api/login", json=body)


async def _parallel_logins(gw: Gateway, bodies: list[dict[str, str]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=gw.base_url, limits=limits, timeout=120) as client:
        return list(await asyncio.gather(*(client.post("/ui/api/login", json=body) for body in bodies)))


def parallel_logins(gw: Gateway, bodies: list[dict[str, str]]) -> list[httpx.Response]:
    """All of ``bodies`` sent at once, each on its own connection."""
    return asyncio.run(_parallel_logins(gw, bodies))


def wrong_guesses(count: int) -> list[dict[str, str]]:
    return [{"username": UI_USER, "password": f"guess-{n}"} for n in range(count)]


def assert_throttled(response: httpx.Response, names: str) -> int:
    """A 429 in the sign-in's JSON error shape; returns its Retry-After."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "sign_in_throttled" and error["type"] == "rate_limit_error"
    assert names in error["message"]
    assert "gw_session" not in response.cookies
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= BURST_WINDOW_S
    return retry_after


@pytest.mark.slow  # waits out a lockout (up to 30 s)
def test_parallel_guesses_are_throttled_before_the_password_is_checked(tmp_path: Path,
                                                                      fake: FakeUpstream) -> None:
    gw = start_ui_gateway(tmp_path, fake, password=slow_hash(UI_PASSWORD))
    try:
        started = time.monotonic()
        responses = parallel_logins(gw, wrong_guesses(150))
        elapsed = time.monotonic() - started
        statuses = [r.status_code for r in responses]
        assert statuses.count(401) == BURST and statuses.count(429) == 150 - BURST, statuses
        # checking this hash 150 times takes some 19 s of CPU on two cores; five checks take about one
        assert elapsed < 8, elapsed
        assert_throttled(next(r for r in responses if r.status_code == 429), "from this address")

        right = login(gw, RIGHT)  # refused before the password is looked at
        retry_after = assert_throttled(right, "from this address")
        assert login(gw, {"key": MASTER_KEY}).status_code == 200  # a key still signs in

        time.sleep(retry_after)  # the lockout ends by itself
        response = login(gw, RIGHT)
        assert response.status_code == 200, response.text
        assert response.json()["who"] == f"user:{UI_USER}"
        assert gw.logs().count("dashboard sign-in refused") == BURST
    finally:
        gw.stop()


def test_a_username_is_throttled_whatever_the_address(tmp_path: Path, fake: FakeUpstream) -> None:
    gw = start_ui_gateway(tmp_path, fake)
    try:
        for n, body in enumerate(wrong_guesses(BURST)):
            assert login_from(gw, f"127.0.0.{10 + n}", body).status_code == 401
        assert_throttled(login_from(gw, "127.0.0.20", RIGHT), "for this username")
        # that address is not throttled: another username is checked (and wrong)
        assert login_from(gw, "127.0.0.20", {"username": "someone", "password": "x"}).status_code == 401
    finally:
        gw.stop()


def test_an_address_is_throttled_whatever_the_username(tmp_path: Path, fake: FakeUpstream) -> None:
    gw = start_ui_gateway(tmp_path, fake)
    try:
        for n in range(BURST):
            assert login_from(gw, "127.0.0.30", {"username": f"user-{n}", "password": "x"}).status_code == 401
        assert_throttled(login_from(gw, "127.0.0.30", RIGHT), "from this address")
        assert login_from(gw, "127.0.0.31", RIGHT).status_code == 200  # the operator, from elsewhere
    finally:
        gw.stop()


@pytest.mark.slow
def test_two_workers_count_failures_together(tmp_path: Path, fake: FakeUpstream, redis_server: RedisServer) -> None:
    storage = f'storage: {{runtime: {{type: redis, addr: "{redis_server.addr}", prefix: "signin-throttle:"}}}}\n'
    gw = start_ui_gateway(tmp_path, fake, storage=storage, workers=2)
    try:
        statuses = [r.status_code for r in parallel_logins(gw, wrong_guesses(150))]
        assert statuses.count(401) == BURST and statuses.count(429) == 150 - BURST, statuses
        assert_throttled(login(gw, RIGHT), "from this address")
    finally:
        gw.stop()
