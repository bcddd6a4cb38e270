"""The rest of the OpenAI surface through the real gateway, with the official SDK:
images, audio (uploads streamed through, speech streamed back), moderations, responses (passed
through, and translated to chat for a chat-only provider), files, assistants and threads with
affinity to the provider key that created each object, and the 400 for what a provider cannot do."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, MASTER_KEY, Gateway
from tests.fake_upstream import DEFAULT_TEXT, SURFACE_TEXT, FakeUpstream, speech_bytes
from tests.integration.test_routing import metric

# the Assistants API and translations' text format are deprecated in the SDK, and still served
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY_A, KEY_B = "sk-upstream-key-one-111111", "sk-upstream-key-two-222222"
MB = 1 << 20


def surface_config(fake: FakeUpstream, fake2: FakeUpstream) -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 20
      max_body_mb: 40
    llm_providers:
      - id: main
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["{KEY_A}", "{KEY_B}"]
        models: [fake-gpt-4o, gpt-image-1, whisper-1, tts-1, omni-moderation-latest]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0}}
      - id: chatonly
        type: openai-compatible
        base_url: {fake2.base_url}
        api_keys: ["sk-chat-only-key-333333"]
        models: [chatty]
        endpoints: [chat]
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream) -> Gateway:
    return start_gateway(surface_config(fake, fake2))


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60)


def access_lines(gateway: Gateway, endpoint: str) -> list[dict[str, Any]]:
    found = []
    for line in gateway.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("endpoint") == endpoint and "status" in entry:
                found.append(entry)
    return found


def last_access(gateway: Gateway, endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = access_lines(gateway, endpoint)
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {endpoint}:\n{gateway.logs()[-3000:]}")


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_images_are_routed_and_accounted(gw: Gateway, fake: FakeUpstream) -> None:
    answer = sdk(gw).images.generate(model="gpt-image-1", prompt="a cat", n=2)
    assert [image.url for image in answer.data or []] == ["https://fake.example/img/0.png",
                                                         "https://fake.example/img/1.png"]
    sent = fake.surface.calls_to("/v1/images/generations")[-1]
    assert sent.json == {"model": "gpt-image-1", "prompt": "a cat", "n": 2}
    assert sent.api_key in (KEY_A, KEY_B)
    line = last_access(gw, "images.generations")
    assert (line["status"], line["prompt_tokens"], line["completion_tokens"]) == (200, 10, 200)
    assert line["cost_usd"] == pytest.approx((10 * 1.0 + 200 * 2.0) / 1000)


def test_moderations_pass_through(gw: Gateway, fake: FakeUpstream) -> None:
    answer = sdk(gw).moderations.create(model="omni-moderation-latest", input="hello")
    assert answer.results[0].flagged is False
    assert fake.surface.calls_to("/v1/moderations")[-1].json == {"model": "omni-moderation-latest",
                                                                 "input": "hello"}


def test_speech_is_streamed_back_with_the_upstreams_content_type(gw: Gateway, fake: FakeUpstream) -> None:
    fake.surface.speech_delay_s = 0.4
    arrivals: list[float] = []
    pieces: list[bytes] = []
    with sdk(gw).audio.speech.with_streaming_response.create(model="tts-1", voice="alloy",
                                                              input="say this") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        for piece in response.iter_bytes():
            arrivals.append(time.monotonic())
            pieces.append(piece)
    assert b"".join(pieces) == speech_bytes("say this")
    # relayed as it came: buffering would deliver it all at once after the upstream's ~1.2 s
    assert arrivals[-1] - arrivals[0] > 0.6


def test_transcription_with_the_sdk(gw: Gateway, fake: FakeUpstream, tmp_path: Path) -> None:
    audio = tmp_path / "hello.wav"
    audio.write_bytes(b"RIFF" + os.urandom(50_000))
    client = sdk(gw)
    with audio.open("rb") as handle:
        answer = client.audio.transcriptions.create(model="whisper-1", file=handle)
    assert answer.text == SURFACE_TEXT
    sent = fake.surface.calls_to("/v1/audio/transcriptions")[-1]
    assert sent.form["model"] == "whisper-1"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    line = last_access(gw, "audio.transcriptions")
    assert (line["prompt_tokens"], line["completion_tokens"]) == (50, 6)
    with audio.open("rb") as handle:
        text = client.audio.translations.create(model="whisper-1", file=handle, response_format="text")
    assert text == SURFACE_TEXT  # a text answer, passed back as text


def multipart(fields: list[tuple[str, bytes, str | None]], boundary: str) -> bytes:
    out = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_a_20mb_upload_is_streamed_through_byte_for_byte(gw: Gateway, fake: FakeUpstream) -> None:
    size = 20 * MB
    boundary = "gatewaytestboundary7d2f"
    # the model after the file (curl's order): the gateway scans past the file for it
    body = multipart([("file", os.urandom(size), "big.wav"), ("model", b"whisper-1", None)], boundary)
    assert gw.proc is not None
    before = peak_rss(gw.proc.pid)
    response = httpx.post(gw.base_url + "/v1/audio/transcriptions", content=body, timeout=60,
                          headers={"Authorization": f"Bearer {CLIENT_KEY}",
                                   "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200, response.text
    grown = peak_rss(gw.proc.pid) - before
    sent = fake.surface.calls_to("/v1/audio/transcriptions")[-1]
    assert (sent.body_size, sent.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert sent.headers["content-length"] == str(len(body))
    print(f"peak RSS grew by {grown / MB:.1f} MiB for a {len(body) / MB:.1f} MiB upload")
    # buffered twice would be 40 MiB, once 20: streamed through, it grows by a few MiB (about 4 measured)
    assert grown < size // 2, f"the gateway's peak memory grew by {grown / MB:.1f} MiB for a 20 MiB upload"


def test_an_upload_refused_by_one_key_is_sent_again_to_the_other(gw: Gateway, fake: FakeUpstream) -> None:
    body = multipart([("model", b"whisper-1", None), ("file", os.urandom(3 * MB), "a.wav")], "b0undary")
    fake.surface.fail_next(429, {"retry-after": "30"})
    response = httpx.post(gw.base_url + "/v1/audio/transcriptions", content=body, timeout=60,
                          headers={"Authorization": f"Bearer {CLIENT_KEY}",
                                   "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.status_code == 200, response.text
    first, second = fake.surface.calls_to("/v1/audio/transcriptions")[-2:]
    assert {first.api_key, second.api_key} == {KEY_A, KEY_B}
    assert first.body_sha256 == second.body_sha256 == hashlib.sha256(body).hexdigest()


def test_an_upload_over_the_limit_is_refused_before_it_is_read(gw: Gateway, fake: FakeUpstream) -> None:
    response = httpx.post(gw.base_url + "/v1/audio/transcriptions", content=b"x" * (41 * MB), timeout=60,
                          headers={"Authorization": f"Bearer {CLIENT_KEY}",
                                   "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert fake.surface.calls_to("/v1/audio") == []


def test_responses_pass_through_whole_and_streamed(gw: Gateway, fake: FakeUpstream) -> None:
    client = sdk(gw)
    answer = client.responses.create(model="fake-gpt-4o", input="hello there friend")
    assert answer.output_text == DEFAULT_TEXT
    assert answer.model == "fake-gpt-4o"
    assert answer.usage is not None and answer.usage.input_tokens == 3
    assert fake.surface.calls_to("/v1/responses")[-1].json["input"] == "hello there friend"
    events = list(client.responses.create(model="main:fake-gpt-4o", input="one two", stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == DEFAULT_TEXT
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.model == "main:fake-gpt-4o"
    line = last_access(gw, "responses")
    assert (line["stream"], line["prompt_tokens"], line["usage_exact"]) == (True, 2, True)


@pytest.mark.parametrize("event_lines", [True, False], ids=["event_lines", "data_lines_only"])
def test_a_responses_stream_is_accounted_whatever_its_framing(gw: Gateway, fake: FakeUpstream,
                                                             event_lines: bool) -> None:
    """The kind of a Responses event is its JSON "type"; an ``event:`` line is optional framing."""
    fake.surface.responses_event_lines = event_lines
    events = list(sdk(gw).responses.create(model="main:fake-gpt-4o", input="one two three", stream=True))
    assert [e.type for e in events][-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_TEXT
    prompt, completion = 3, len(DEFAULT_TEXT.split())  # the fake's usage: words in, words out
    cost = (prompt * 1.0 + completion * 2.0) / 1000
    line = last_access(gw, "responses")
    assert (line["error"], line["prompt_tokens"], line["completion_tokens"], line["usage_exact"]) == (
        None, prompt, completion, True)
    assert line["cost_usd"] == pytest.approx(cost)
    row = recent_row(gw)
    assert (row["status"], row["error_code"], row["tokens_in"], row["tokens_out"]) == (200, None, prompt, completion)
    assert row["cost"] == pytest.approx(cost)
    assert metric(gw, "gateway_client_errors_total", client_id="app") == 0
    assert metric(gw, "gateway_client_cost_total", client_id="app") == pytest.approx(cost)


def recent_row(gateway: Gateway, timeout: float = 10.0) -> dict[str, Any]:
    """The newest ledger row of client ``app`` (rows are written in batches)."""
    deadline = time.monotonic() + timeout
    with gateway.client(MASTER_KEY) as api:
        while time.monotonic() < deadline:
            answer = api.get("/admin/v1/requests/recent", params={"client_id": "app", "limit": 1})
            assert answer.status_code == 200, answer.text
            if answer.json()["requests"]:
                return answer.json()["requests"][0]
            time.sleep(0.1)
    raise AssertionError(f"no ledger row for app:\n{gateway.logs()[-3000:]}")


def test_responses_are_translated_to_chat_for_a_chat_only_provider(gw: Gateway, fake2: FakeUpstream) -> None:
    client = sdk(gw)
    answer = client.responses.create(model="chatonly:chatty", instructions="be brief", input="hi")
    assert answer.output_text == DEFAULT_TEXT
    assert answer.usage is not None and answer.usage.output_tokens == len(DEFAULT_TEXT.split())
    sent = fake2.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert fake2.surface.calls == []  # never asked for /v1/responses
    events = list(client.responses.create(model="chatonly:chatty", input="hi", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == DEFAULT_TEXT
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == DEFAULT_TEXT
    assert final.response.usage is not None and final.response.usage.input_tokens > 0


def test_an_endpoint_a_provider_cannot_serve_is_a_400_naming_it(gw: Gateway, fake2: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gw).images.generate(model="chatonly:chatty", prompt="a cat")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "unsupported_endpoint"
    assert "'chatonly'" in error["message"] and "/v1/images/generations" in error["message"]
    assert fake2.requests == [] and fake2.surface.calls == []


def test_files_reach_the_key_that_created_them(gw: Gateway, fake: FakeUpstream) -> None:
    client = sdk(gw)
    created = {}
    for n in range(4):  # the pool's keys take turns: both hold files
        uploaded = client.files.create(file=(f"f{n}.jsonl", f'{{"n": {n}}}\n'.encode()), purpose="batch")
        created[uploaded.id] = fake.surface.calls_to("/v1/files")[-1].api_key
    assert set(created.values()) == {KEY_A, KEY_B}
    for file_id, key in created.items():
        assert client.files.retrieve(file_id).id == file_id
        assert fake.surface.calls[-1].api_key == key
        assert client.files.content(file_id).content.endswith(b"\r\n")  # the upload's bytes, from the same key
        assert fake.surface.calls[-1].api_key == key
    gone = next(iter(created))
    assert client.files.delete(gone).deleted is True
    assert fake.surface.calls[-1].api_key == created[gone]


def test_assistants_and_threads_reach_the_key_that_created_them(gw: Gateway, fake: FakeUpstream) -> None:
    client = sdk(gw)
    beta: Any = client.beta
    assistant = beta.assistants.create(model="fake-gpt-4o", name="helper")
    owner = fake.surface.calls[-1].api_key
    assert fake.surface.calls[-1].json["model"] == "fake-gpt-4o"
    assert fake.surface.calls[-1].headers.get("openai-beta") == "assistants=v2"
    run = beta.threads.create_and_run(assistant_id=assistant.id)
    assert fake.surface.calls[-1].api_key == owner  # pinned by the assistant it names
    for _ in range(3):  # whatever the rotation, the thread's calls reach its key
        beta.threads.messages.create(run.thread_id, role="user", content="hello")
        assert fake.surface.calls[-1].api_key == owner
    listed = beta.threads.messages.list(run.thread_id)
    assert len(listed.data) == 3 and fake.surface.calls[-1].api_key == owner
    assert beta.threads.runs.retrieve(run.id, thread_id=run.thread_id).id == run.id
    assert beta.assistants.retrieve(assistant.id).name == "helper"
    thread = beta.threads.create()
    thread_key = fake.surface.calls[-1].api_key
    for _ in range(3):
        beta.threads.messages.create(thread.id, role="user", content="hi")
        assert fake.surface.calls[-1].api_key == thread_key


def test_pins_survive_a_restart_in_the_default_sqlite_store(gw: Gateway, fake: FakeUpstream) -> None:
    """The pins live in the configured store (here the default SQLite file), not in the worker."""
    client = sdk(gw)
    created = {}
    for n in range(2):  # key one, then key two
        uploaded = client.files.create(file=(f"f{n}.jsonl", b'{"n": 1}\n'), purpose="batch")
        created[uploaded.id] = fake.surface.calls[-1].api_key
    assert set(created.values()) == {KEY_A, KEY_B}
    gw.stop()
    gw.start()
    client = sdk(gw)
    # the restarted worker's rotation starts at key one again: asked first, key two's file would miss
    for file_id, key in reversed(created.items()):
        assert client.files.retrieve(file_id).id == file_id
        assert fake.surface.calls[-1].api_key == key
