"""Request ids (issue 12: counted from a random start, no system call each): every answer carries
one, distinct per request, in the shape it always had (16 hex digits); a client's own id is kept;
the access log line names the same id."""

from __future__ import annotations

import json
import re

from tests.conftest import CLIENT_KEY
from tests.fake_upstream import Behaviour

ONE_MESSAGE = {"model": "fast", "messages": [{"role": "user", "content": "x"}]}


def test_each_answer_has_its_own_request_id(gateway, fake):
    fake.set_default(Behaviour(text="hi"))
    with gateway.client(CLIENT_KEY) as client:
        ids = [client.post("/v1/chat/completions", json=ONE_MESSAGE).headers["x-request-id"] for _ in range(20)]
        own = client.post("/v1/chat/completions", json=ONE_MESSAGE, headers={"x-request-id": "mine-123"})
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert own.headers["x-request-id"] == "mine-123"
    logged = {json.loads(line).get("request_id") for line in gateway.logs().splitlines() if line.startswith("{")}
    assert set(ids) | {"mine-123"} <= logged
