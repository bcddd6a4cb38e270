"""The conformance suite: every case under ``cases/`` driven through the real gateway over HTTP.

A case (one YAML file, see README.md) is a client request in one dialect, the exact request the
gateway must send upstream in another protocol, the upstream's answer, and the exact answer the
client must get back. The replay upstream (``replay.py``) checks the request field by field and
replays the answer; the runner then checks the answer field by field (``compare.py``) and, when
the case says, the ledger's row for the request.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conformance.compare import differences
from tests.conformance.replay import ReplayUpstream
from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway

HERE = Path(__file__).resolve().parent
CASES = sorted((HERE / "cases").rglob("*.yaml"))
CASE_KEYS = frozenset({"summary", "sources", "client", "upstream", "answer", "ledger"})
# how each dialect's client sends its key
CREDENTIALS = {"anthropic": "x-api-key", "gemini": "x-goog-api-key", "openai": "authorization",
               "responses": "authorization"}
_ids = itertools.count(1)


def load_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    unknown = set(case) - CASE_KEYS
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)} (a case has {sorted(CASE_KEYS)})"
    assert case["client"]["dialect"] in CREDENTIALS, f"{path.name}: client.dialect must be one of {list(CREDENTIALS)}"
    return case


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream(secrets=(CLIENT_KEY,)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(module_gateway: Callable[[str], Gateway], upstream: ReplayUpstream) -> Gateway:
    config = (HERE / "gateway.yaml").read_text()
    return module_gateway(config.replace("{upstream}", upstream.base_url).replace("{client_key}", CLIENT_KEY))


def parse_sse(raw: str) -> list[dict[str, Any]]:
    """SSE text as ``[{event?, data}]`` (``data`` parsed as JSON where it is JSON)."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        item: dict[str, Any] = {}
        data = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
        for line in lines:
            if line.startswith("event:"):
                item["event"] = line[6:].strip()
        text = "\n".join(data)
        try:
            item["data"] = json.loads(text)
        except ValueError:
            item["data"] = text
        events.append(item)
    return events


def send(gateway: Gateway, client: dict[str, Any], request_id: str) -> tuple[httpx.Response, str]:
    """The client's request; the answer and its body as text (read whole, a stream to its end)."""
    header = CREDENTIALS[client["dialect"]]
    headers = {header: f"Bearer {CLIENT_KEY}" if header == "authorization" else CLIENT_KEY,
               "x-request-id": request_id, **(client.get("headers") or {})}
    with httpx.stream(client.get("method", "POST"), gateway.base_url + client["path"], headers=headers,
                      json=client.get("body"), timeout=30) as answer:
        return answer, answer.read().decode()


def answer_problems(expected: dict[str, Any], answer: httpx.Response, text: str) -> list[str]:
    problems = differences(expected.get("status", 200), answer.status_code, "answer.status")
    for name, want in (expected.get("headers") or {}).items():
        problems += differences(want, answer.headers.get(name, "$absent"), f"answer.headers.{name}")
    if "events" in expected:
        problems += differences(expected["events"], parse_sse(text), "answer.events")
    if "body" in expected:
        try:
            body = json.loads(text)
        except ValueError:
            return [*problems, f"answer.body: not JSON: {text[:300]!r}"]
        problems += differences(expected["body"], body, "answer.body")
    return problems


def ledger_problems(gateway: Gateway, request_id: str, expected: dict[str, Any]) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(gateway.base_url + "/admin/v1/requests/recent", params={"limit": 50},
                         headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10).json()["requests"]
        row = next((r for r in rows if r["request_id"] == request_id), None)
        if row is not None:  # cost rounded: it is a sum of products of floats
            found = {key: round(row[key], 9) if key == "cost" else row[key] for key in expected if key in row}
            return differences(expected, found, "ledger")
        if time.monotonic() > deadline:
            return [f"ledger: no row for request {request_id}"]
        time.sleep(0.05)


@pytest.mark.parametrize("path", CASES, ids=[str(p.relative_to(HERE / "cases").with_suffix("")) for p in CASES])
def test_case(path: Path, gateway: Gateway, upstream: ReplayUpstream) -> None:
    case = load_case(path)
    request_id = f"conformance-{next(_ids)}"
    upstream.expect(case.get("upstream"))
    answer, text = send(gateway, case["client"], request_id)
    sent = upstream.problems
    assert not sent, "the request the gateway sent upstream differs from the case:\n" + "\n".join(sent)
    if case.get("upstream"):
        assert upstream.received == 1, f"no upstream request was sent (answer {answer.status_code}: {text[:500]})"
    problems = answer_problems(case["answer"], answer, text)
    assert not problems, "the answer differs from the case:\n" + "\n".join(problems) + f"\n\nanswer: {text[:3000]}"
    if "ledger" in case:
        problems = ledger_problems(gateway, request_id, case["ledger"])
        assert not problems, "the ledger row differs from the case:\n" + "\n".join(problems)
