"""The opt-in scheduling hint (gateway/server/sched.py), checked on the running process via /proc.

By default every thread keeps the default policy. With ``GATEWAY_BATCH_HELPER_THREADS=true``
every thread but the loop's (the main thread of a one-worker gateway) ends up under
SCHED_BATCH, and the loop's stays SCHED_OTHER.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pytest

from tests.conftest import Gateway, basic_config
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")


def policies(pid: int) -> dict[int, int]:
    """Each live thread's scheduling policy."""
    found: dict[int, int] = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            found[int(name)] = os.sched_getscheduler(int(name))
        except OSError:  # the thread ended meanwhile
            continue
    return found


def chat(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.post("/v1/chat/completions", json={"model": "fake-gpt-4o",
                                                              "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text


def test_helper_threads_are_batched_and_the_loop_thread_is_not(start_gateway: Callable[..., Gateway],
                                                             fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake), env={"GATEWAY_BATCH_HELPER_THREADS": "true"})
    assert gateway.proc is not None
    pid = gateway.proc.pid
    chat(gateway)
    deadline = time.monotonic() + 5
    while True:
        seen = policies(pid)
        helpers = {tid: policy for tid, policy in seen.items() if tid != pid}
        if helpers and all(policy == os.SCHED_BATCH for policy in helpers.values()):
            break
        assert time.monotonic() < deadline, f"helper threads not batched: {seen}; logs:\n{gateway.logs()[-2000:]}"
        time.sleep(0.1)
    assert len(helpers) >= 2  # Granian's I/O threads at least
    assert seen[pid] == os.SCHED_OTHER  # the event loop's own thread keeps the default policy
    chat(gateway)  # and it still serves


def test_by_default_no_thread_is_batched(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake))
    assert gateway.proc is not None
    chat(gateway)
    time.sleep(1.5)  # past the first sweeps the hint would make
    seen = policies(gateway.proc.pid)
    assert len(seen) >= 3
    assert set(seen.values()) == {os.SCHED_OTHER}, seen
