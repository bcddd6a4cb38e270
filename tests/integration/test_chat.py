"""The gateway core over real HTTP: chat (whole and streamed), models, health, auth, errors."""

from __future__ import annotations

import hashlib
import json
import socket
import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import CLIENT_KEY, MASTER_KEY, basic_config
from tests.fake_upstream import Behaviour

UPSTREAM_KEYS = ("sk-upstream-key-one-111111", "sk-upstream-key-two-222222")
CHAT_URL = "/v1/chat/completions"
ONE_MESSAGE = {"model": "fast", "messages": [{"role": "user", "content": "x"}]}


def sdk(gateway, key: str = CLIENT_KEY, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + prefix, api_key=key, max_retries=0, timeout=30)


def test_chat_completion_through_the_openai_sdk(gateway, fake):
    fake.set_default(Behaviour(text="Bonjour tout le monde"))
    answer = sdk(gateway).chat.completions.create(model="fast", messages=[{"role": "user", "content": "say hi"}])
    assert answer.choices[0].message.content == "Bonjour tout le monde"
    assert answer.model == "fast"  # what the client asked for, not the upstream's name
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    sent = fake.requests[-1]
    assert sent.json["model"] == "fake-gpt-4o-mini"
    assert sent.api_key in UPSTREAM_KEYS
    assert sent.json["messages"] == [{"role": "user", "content": "say hi"}]


def test_streaming_passes_chunks_through_one_by_one(gateway, fake):
    fake.set_default(Behaviour(text="one two three four", chunks=4, chunk_delay_s=0.3))
    arrivals, pieces = [], []
    stream = sdk(gateway).chat.completions.create(model="fake-gpt-4o", stream=True,
                                                  messages=[{"role": "user", "content": "count"}])
    for chunk in stream:
        arrivals.append(time.monotonic())
        assert chunk.model == "fake-gpt-4o"
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == "one two three four"
    # buffered relaying would deliver everything at once, at the end
    assert arrivals[-1] - arrivals[0] > 0.6
    # the gateway always asks the upstream for usage, and strips it when the client did not ask
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}


def test_stream_include_usage_is_honoured(gateway, fake):
    fake.set_default(Behaviour(text="a b c", chunks=3))
    client = sdk(gateway)
    with_usage = list(client.chat.completions.create(
        model="fake-gpt-4o", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello there"}]))
    usage_chunks = [c for c in with_usage if c.usage is not None]
    assert len(usage_chunks) == 1
    usage = usage_chunks[0].usage
    assert usage is not None and usage.completion_tokens == 3
    without = list(client.chat.completions.create(model="fake-gpt-4o", stream=True,
                                                  messages=[{"role": "user", "content": "hello there"}]))
    assert all(c.usage is None for c in without)
    assert len(without) == len(with_usage) - 1


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1", ""])
def test_every_path_prefix_serves_chat(gateway, fake, prefix):
    answer = sdk(gateway, prefix=prefix).chat.completions.create(
        model="fake:fake-gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the fake upstream"
    assert answer.model == "fake:fake-gpt-4o"


def test_models_lists_what_the_client_may_use(start_gateway, fake, fake2):
    config = f"""
    llm_providers:
      - {{id: one, type: openai-compatible, base_url: "{fake.base_url}", api_keys: [k1-aaaaaaaa], models: [m1]}}
      - {{id: two, type: openai-compatible, base_url: "{fake2.base_url}", api_keys: [k2-aaaaaaaa], model: m2}}
    model_aliases:
      best: two:m2
    api_keys:
      - {{id: limited, key: {CLIENT_KEY}, allowed_providers: [one]}}
    """
    gw = start_gateway(config)
    limited = sorted(m.id for m in sdk(gw).models.list())
    assert limited == ["m1", "one:m1"]
    everything = sorted(m.id for m in sdk(gw, MASTER_KEY).models.list())
    assert everything == ["best", "m1", "m2", "one:m1", "two:m2"]


def test_health_endpoints(gateway):
    assert httpx.get(gateway.base_url + "/health").json() == {"status": "healthy"}
    assert httpx.get(gateway.base_url + "/health/liveliness").status_code == 200
    ready = gateway.readiness()
    assert ready["status"] == "ready"
    assert len(ready["config"]["version"]) == 12
    body = json.dumps(ready)
    for secret in (*UPSTREAM_KEYS, CLIENT_KEY, MASTER_KEY):
        assert secret not in body


def test_authentication(start_gateway, fake):
    hashed_key = "sk-hashed-client-key-987654321"
    digest = hashlib.sha256(hashed_key.encode()).hexdigest()
    gw = start_gateway(basic_config(fake).replace(
        "api_keys:\n  - id: app",
        f'api_keys:\n  - id: hashed\n    key_hash: "sha256:{digest}"\n  - id: app'))
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    body = {"model": "fast", "messages": messages}
    url = gw.base_url + CHAT_URL
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-wrong-key-000000000"})
    assert wrong.status_code == 401 and "sk-wrong-key" not in wrong.text
    for headers in ({"x-api-key": CLIENT_KEY}, {"Authorization": f"Bearer {MASTER_KEY}"},
                    {"Authorization": f"Bearer {hashed_key}"}):
        assert httpx.post(url, json=body, headers=headers).status_code == 200, headers
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-nope-nope-nope-nope").chat.completions.create(model="fast", messages=messages)


def test_provider_not_allowed_is_403(start_gateway, fake, fake2):
    config = f"""
    llm_providers:
      - {{id: one, type: openai-compatible, base_url: "{fake.base_url}", api_keys: [k1-aaaaaaaa], models: [m1]}}
      - {{id: two, type: openai-compatible, base_url: "{fake2.base_url}", api_keys: [k2-aaaaaaaa], models: [m2]}}
    api_keys:
      - {{id: limited, key: {CLIENT_KEY}, allowed_providers: [one]}}
    """
    gw = start_gateway(config)
    with gw.client() as client:
        for model in ("m2", "two:m2"):
            response = client.post(CHAT_URL, json={**ONE_MESSAGE, "model": model})
            assert response.status_code == 403, model
            assert response.json()["error"] == {**response.json()["error"], "type": "authorization_error",
                                                "code": "provider_not_allowed"}
        assert client.post(CHAT_URL, json={**ONE_MESSAGE, "model": "m1"}).status_code == 200
    assert fake2.count() == 0


@pytest.mark.parametrize("payload, status, code, words", [
    ({**ONE_MESSAGE, "model": "no-such-model"}, 400, "model_not_found", "no-such-model"),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request", "'model'"),
    ({"model": "fast"}, 400, "invalid_request", "'messages'"),
    ({"model": "fast", "messages": []}, 400, "invalid_request", "non-empty"),
    ({**ONE_MESSAGE, "stream": "yes"}, 400, "invalid_request", "'stream'"),
    ({"model": "fast", "messages": [{"role": "user", "content": "x" * 300_000}]}, 413, "request_too_large", "limit"),
])
def test_bad_requests_get_openai_shaped_errors(start_gateway, fake, payload, status, code, words):
    listen = 'listen: "127.0.0.1:2906"'
    gw = start_gateway(basic_config(fake).replace(listen, listen + "\n  max_body_mb: 0.25"))
    with gw.client() as client:
        response = client.post("/v1/chat/completions", json=payload)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert error["type"] == "invalid_request_error"
    assert fake.count() == 0


def test_malformed_json_says_what_is_wrong(gateway, fake):
    with gateway.client() as client:
        response = client.post("/v1/chat/completions", content=b'{"model": "fast", "messages": [',
                               headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_upstream_failure_is_502_after_trying_every_key(gateway, fake):
    fake.set_default(Behaviour(status=500, body={"error": {"message": "boom"}}))
    with gateway.client() as client:
        response = client.post(CHAT_URL, json=ONE_MESSAGE)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "provider_error"
    assert response.json()["error"]["code"] == "provider_error"
    assert {r.api_key for r in fake.requests} == set(UPSTREAM_KEYS)


def test_upstream_timeout_is_504(start_gateway, fake):
    gw = start_gateway(basic_config(fake).replace("request_timeout_s: 5", "request_timeout_s: 0.5"))
    fake.set_default(Behaviour(hang=True))
    with gw.client() as client:
        response = client.post(CHAT_URL, json=ONE_MESSAGE)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_client_disconnect_mid_stream_cancels_the_upstream_request(gateway, fake):
    fake.set_default(Behaviour(text=" ".join(["word"] * 50), chunks=50, chunk_delay_s=0.1))
    body = json.dumps({"model": "fast", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"data:" not in received:
            received += sock.recv(65536)
    # the client is gone after the first chunk; the upstream must see its connection close
    assert fake.wait_for_disconnects(1, timeout=3.0)
    assert fake.in_flight == 0


def test_client_disconnect_while_waiting_cancels_the_upstream_request(gateway, fake):
    fake.set_default(Behaviour(hang=True))
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "x"}]}).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 3
        while fake.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert fake.wait_for_disconnects(1, timeout=3.0)


def test_keys_never_reach_errors_or_logs(gateway, fake):
    # an upstream that echoes the key in its error, as OpenAI's 401 does
    echoed = f"bad request for key {UPSTREAM_KEYS[0]} and {UPSTREAM_KEYS[1]}"
    fake.set_default(Behaviour(status=400, body={"error": {"message": echoed}}))
    with gateway.client() as client:
        response = client.post(CHAT_URL, json=ONE_MESSAGE)
        assert response.status_code == 400
        fake.set_default(Behaviour(status=401, body={"error": {"message": f"Incorrect API key {UPSTREAM_KEYS[0]}"}}))
        denied = client.post(CHAT_URL, json=ONE_MESSAGE)
        assert denied.status_code == 503
        metrics = gateway.metrics()
    for text in (response.text, denied.text, metrics, gateway.logs()):
        for secret in (*UPSTREAM_KEYS, CLIENT_KEY, MASTER_KEY):
            assert secret not in text


def test_stream_cut_upstream_ends_with_an_error_event(gateway, fake):
    fake.set_default(Behaviour(text="a b c d e f", chunks=6, cut_after=2))
    with (
        gateway.client() as client,
        client.stream("POST", CHAT_URL, json={**ONE_MESSAGE, "stream": True}) as r,
    ):
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert r.status_code == 200
    assert "[DONE]" not in events[-1]
    last = json.loads(events[-1][5:])
    assert last["error"]["code"] == "stream_interrupted"
    assert fake.count() == 1  # nothing is retried once bytes reached the client


def test_sigterm_lets_requests_in_flight_finish(gateway, fake):
    import os
    import signal
    import threading

    fake.set_default(Behaviour(delay_s=1.0, text="finished anyway"))
    result: dict = {}

    def call() -> None:
        with gateway.client() as client:
            result["response"] = client.post("/v1/chat/completions",
                                             json={"model": "fast", "messages": [{"role": "user", "content": "x"}]})

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 5
    while fake.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(gateway.proc.pid, signal.SIGTERM)
    worker.join(15)
    assert result["response"].status_code == 200
    assert result["response"].json()["choices"][0]["message"]["content"] == "finished anyway"
    assert gateway.proc.wait(15) == 0


@pytest.mark.parametrize("payload, param", [
    ({"stream": True, "stream_options": "x"}, "stream_options"),
    ({"max_tokens": None, "max_completion_tokens": "x"}, "max_completion_tokens"),
    ({"model": "fake:" + "m" * 300}, "model"),
])
def test_odd_request_fields_are_400_not_500(gateway, fake, payload, param):
    body = {"model": "fast", "messages": [{"role": "user", "content": "x"}], **payload}
    with gateway.client() as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_odd_upstream_usage_does_not_break_the_answer(gateway, fake):
    fake.set_default(Behaviour(body={"id": "x", "object": "chat.completion", "model": "m",
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
                                     "usage": {"prompt_tokens": {"odd": 1}, "completion_tokens": "many"}}))
    with gateway.client() as client:
        response = client.post(CHAT_URL, json=ONE_MESSAGE)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "hi"
