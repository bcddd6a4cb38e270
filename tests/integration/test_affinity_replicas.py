"""Affinity across replicas: two gateway processes sharing one real redis-server. An
object (a file, an assistant, a thread) created through gateway A with one of a provider's two
keys is reached through that same key when later calls name it through gateway B, which never
saw it created. The fake upstream keeps each object in the account of the key that created it
(another key gets a 404) and records the key of every request."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
import redis

from tests.conftest import Gateway
from tests.fake_upstream import FakeUpstream
from tests.integration.test_openai_surface import KEY_A, KEY_B, sdk, surface_config
from tests.store.servers import RedisServer

# the Assistants API is deprecated in the SDK, and still served
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_prefixes = itertools.count()


def two_replicas(start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream,
                 redis_server: RedisServer) -> tuple[Gateway, Gateway, str]:
    prefix = f"affinity{next(_prefixes)}:"
    storage = f'storage: {{type: redis, addr: "{redis_server.addr}", prefix: "{prefix}"}}\n'
    config = surface_config(fake, fake2) + storage
    return start_gateway(config), start_gateway(config), prefix


def test_files_created_on_one_replica_reach_their_key_through_the_other(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream,
        redis_server: RedisServer) -> None:
    a, b, prefix = two_replicas(start_gateway, fake, fake2, redis_server)
    on_a, on_b = sdk(a), sdk(b)
    created: dict[str, str | None] = {}
    for n in range(4):  # the pool's keys take turns: both hold files
        uploaded = on_a.files.create(file=(f"f{n}.jsonl", f'{{"n": {n}}}\n'.encode()), purpose="batch")
        created[uploaded.id] = fake.surface.calls_to("/v1/files")[-1].api_key
    assert set(created.values()) == {KEY_A, KEY_B}
    # A's rotation gave the files keys 1, 2, 1, 2; B's own rotation starts at key 1 too, so B asks for
    # them in the other order: a first call that B routed by its rotation would reach the other key
    # (and a 404); the pins in the store send it to the owner
    for file_id, key in reversed(created.items()):
        for _ in range(3):
            assert on_b.files.retrieve(file_id).id == file_id
            assert fake.surface.calls[-1].api_key == key
        assert on_b.files.content(file_id).content.endswith(b"\r\n")
        assert fake.surface.calls[-1].api_key == key
    gone = next(iter(created))
    assert on_b.files.delete(gone).deleted is True
    assert fake.surface.calls[-1].api_key == created[gone]

    # what the store holds: the provider and the key's ident, never the key; the deleted file's pin is gone
    store = redis.Redis.from_url(f"redis://{redis_server.addr}", decode_responses=True)
    try:
        pins = {k.removeprefix(prefix + "pin:"): store.get(k) for k in store.scan_iter(prefix + "pin:*")}
        ttl = store.ttl(prefix + "pin:" + list(created)[1])
    finally:
        store.close()
    assert set(pins) == set(created) - {gone}
    for value in pins.values():
        assert value is not None and KEY_A not in value and KEY_B not in value
        pin = json.loads(value)
        assert pin["provider"] == "main" and pin["key"].startswith("main:")
    assert 29 * 86400 < ttl <= 30 * 86400  # pins expire (a month) rather than pile up


def test_assistants_and_threads_created_on_one_replica_reach_their_key_through_the_other(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream,
        redis_server: RedisServer) -> None:
    a, b, _ = two_replicas(start_gateway, fake, fake2, redis_server)
    beta_a: Any = sdk(a).beta
    beta_b: Any = sdk(b).beta
    assistant = beta_a.assistants.create(model="fake-gpt-4o", name="helper")
    owner = fake.surface.calls[-1].api_key
    thread = beta_a.threads.create()
    thread_key = fake.surface.calls[-1].api_key
    assert {owner, thread_key} == {KEY_A, KEY_B}
    sdk(b).files.list()  # B's rotation moves on a step: routed by it, the next two calls would miss
    for _ in range(3):  # whatever B's rotation, the objects' calls reach their keys
        assert beta_b.assistants.retrieve(assistant.id).name == "helper"
        assert fake.surface.calls[-1].api_key == owner
        beta_b.threads.messages.create(thread.id, role="user", content="hi")
        assert fake.surface.calls[-1].api_key == thread_key
    listed = beta_b.threads.messages.list(thread.id)
    assert len(listed.data) == 3 and fake.surface.calls[-1].api_key == thread_key
    run = beta_b.threads.create_and_run(assistant_id=assistant.id)  # pinned by the assistant it names
    assert fake.surface.calls[-1].api_key == owner
    message = beta_a.threads.messages.create(run.thread_id, role="user", content="back on A")
    assert fake.surface.calls[-1].api_key == owner  # the thread B created is known to A
    assert message.thread_id == run.thread_id


def test_an_unknown_object_id_is_a_404_from_the_upstream_not_a_gateway_error(
        start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream,
        redis_server: RedisServer) -> None:
    """An id no replica pinned is routed like a new call (the upstream answers for it)."""
    _, b, _ = two_replicas(start_gateway, fake, fake2, redis_server)
    with pytest.raises(openai.NotFoundError):
        sdk(b).files.retrieve("file-never-created")
    assert fake.surface.calls[-1].path == "/v1/files/file-never-created"
