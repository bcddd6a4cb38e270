"""Request ids (counted from a random start, no system call each): every answer carries
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


def test_every_dialect_and_the_rest_of_the_surface_answer_with_a_request_id(gateway, fake):
    fake.set_default(Behaviour(text="hi"))
    calls = [
        ("/v1/messages", {"model": "fast", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]}),
        ("/v1beta/models/fast:generateContent", {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}),
        ("/v1/responses", {"model": "fast", "input": "x"}),
    ]
    with gateway.client(CLIENT_KEY) as client:
        for path, body in calls:
            ids = [client.post(path, json=body) for _ in range(3)]
            assert all(r.status_code == 200 for r in ids), [(path, r.status_code, r.text[:200]) for r in ids]
            found = [r.headers["x-request-id"] for r in ids]
            assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in found), (path, found)
            assert len(set(found)) == 3
            assert client.post(path, json=body, headers={"x-request-id": "mine-9"}).headers["x-request-id"] == "mine-9"
