"""Self-test of the fake upstream server (tests/fake_upstream.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one two three"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture()
def fake(server: FakeUpstream) -> Iterator[FakeUpstream]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture()
def client(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, timeout=2.0) as c:
        yield c


def chat(client: httpx.Client, key: str = "sk-test", **extra: object) -> httpx.Response:
    body = {"model": "gpt-x", "messages": MESSAGES, **extra}
    return client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def sse_events(lines: list[str]) -> list[str]:
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]


def test_non_stream_shape_and_usage(fake: FakeUpstream, client: httpx.Client) -> None:
    r = chat(client)
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "gpt-x"
    assert data["id"] and isinstance(data["created"], int)
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": DEFAULT_TEXT}
    assert choice["finish_reason"] == "stop"
    # words: 2 + 3, plus 3 per message; completion = 5 words of the default text
    assert data["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    assert fake.count() == 1 and fake.count("sk-test") == 1
    rec = fake.requests[0]
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.api_key == "sk-test" and rec.headers["authorization"] == "Bearer sk-test"
    assert rec.json["model"] == "gpt-x"
    assert fake.in_flight == 0


def test_usage_can_be_omitted_and_text_overridden(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(Behaviour(usage=False, text="a b"))
    data = chat(client).json()
    assert "usage" not in data and data["choices"][0]["message"]["content"] == "a b"


def test_stream_with_usage(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(Behaviour(chunks=4))
    body = {"model": "gpt-x", "messages": MESSAGES, "stream": True,
            "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(list(r.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 4 + 2  # content chunks, finish chunk, usage chunk
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-x" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks[:4]) == DEFAULT_TEXT
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["total_tokens"] == 16


def test_stream_without_include_usage(client: httpx.Client) -> None:
    with client.stream("POST", "/chat/completions", json={"model": "m", "stream": True}) as r:
        events = sse_events(list(r.iter_lines()))
    assert len(events) == 3 + 1 + 1 and events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in events[:-1])


def test_scripted_429_then_default(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.set_default(Behaviour(text="default answer"))
    fake.script(Behaviour(status=429, headers={"Retry-After": "2"}))
    r1, r2 = chat(client), chat(client)
    assert r1.status_code == 429 and r1.headers["retry-after"] == "2"
    assert r1.json()["error"]["type"] == "rate_limit_error"
    assert r2.status_code == 200
    assert r2.json()["choices"][0]["message"]["content"] == "default answer"


def test_verbatim_body(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(Behaviour(status=503, body="upstream down"), Behaviour(status=400, body={"x": 1}))
    r1, r2 = chat(client), chat(client)
    assert (r1.status_code, r1.text) == (503, "upstream down")
    assert (r2.status_code, r2.json()) == (400, {"x": 1})


def test_per_key_scripting(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(Behaviour(status=500), key="k1")
    fake.set_default(Behaviour(status=401), key="k3")
    assert chat(client, key="k2").status_code == 200
    assert chat(client, key="k1").status_code == 500
    assert chat(client, key="k1").status_code == 200
    azure = client.post("/openai/deployments/dep1/chat/completions", json={"messages": MESSAGES},
                        headers={"api-key": "k3"})
    assert azure.status_code == 401
    fake.set_default(None, key="k3")
    r = client.post("/openai/deployments/dep1/chat/completions", json={"messages": MESSAGES},
                    headers={"x-api-key": "k3"})
    assert r.status_code == 200 and r.json()["model"] == "dep1"
    assert fake.count("k1") == 2 and fake.count("k3") == 2 and fake.count() == 5


def test_embeddings_models_and_404(client: httpx.Client) -> None:
    emb = client.post("/v1/embeddings", json={"model": "e", "input": ["a b", "c"]}).json()
    assert emb["object"] == "list" and len(emb["data"]) == 2
    assert emb["data"][1] == {"object": "embedding", "index": 1, "embedding": [0.1, 0.2, 0.3]}
    assert emb["usage"]["prompt_tokens"] == 3
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and len(models["data"]) >= 2
    r = client.get("/v1/nope")
    assert r.status_code == 404 and "message" in r.json()["error"]


def test_cut_after_gives_incomplete_stream(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(Behaviour(chunks=5, cut_after=2))
    lines: list[str] = []
    with (
        pytest.raises(httpx.HTTPError),
        client.stream("POST", "/v1/chat/completions", json={"model": "m", "stream": True}) as r,
    ):
        for line in r.iter_lines():
            lines.append(line)
    events = sse_events(lines)
    assert len(events) == 2 and "[DONE]" not in events
    assert fake.disconnects == 0  # the server cut, not the client


def test_disconnect_during_hang_is_counted(fake: FakeUpstream) -> None:
    fake.script(Behaviour(hang=True))
    with httpx.Client(base_url=fake.base_url, timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        chat(c)
    assert fake.wait_for_disconnects(1, timeout=1.5)
    assert fake.in_flight == 0


def test_disconnect_mid_stream_is_counted(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script(Behaviour(chunks=10, chunk_delay_s=0.2))
    with client.stream("POST", "/v1/chat/completions", json={"model": "m", "stream": True}) as r:
        next(r.iter_lines())
    assert fake.wait_for_disconnects(1, timeout=1.5)


def test_cli_mode_prints_ready_and_answers() -> None:
    script = Path(__file__).resolve().parents[1] / "fake_upstream.py"
    cmd = [sys.executable, str(script), "--host", "127.0.0.1", "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            assert line[0] == "READY"
            url = f"http://127.0.0.1:{int(line[1])}"
            r = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
            assert r.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT
        finally:
            proc.terminate()
            assert proc.wait(timeout=5) == 0
