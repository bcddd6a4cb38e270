"""Reload safety: half-written files, refusals only a reload makes, duplicate keys, alias bombs,
parsing off the event loop, and configs reached through symlinks (Kubernetes ConfigMaps, ln -sfn).

Every test drives the real gateway process: files change on disk, and what it serves (answers,
401s, /health/readiness) shows whether the edit was applied or refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

OTHER_KEY = "sk-test-other-client-0123456789"


def config_text(fake: FakeUpstream, fake2: FakeUpstream, alias_target: str = "one:m1",
                clients: str | None = None, providers: str | None = None) -> str:
    """A block-style config, as an operator writes one: providers first, clients at the end."""
    if providers is None:
        providers = f"""
          - id: one
            type: openai-compatible
            base_url: "{fake.base_url}"
            api_keys: [key-one-aaaaaaaa]
            models: [m1]
          - id: two
            type: openai-compatible
            base_url: "{fake2.base_url}"
            api_keys: [key-two-bbbbbbbb]
            models: [m2]"""
    if clients is None:
        clients = f"""
          - id: app
            key: {CLIENT_KEY}"""
    return textwrap.dedent(f"""\
        server:
          listen: "127.0.0.1:2906"
          log_requests: false
        routing:
          strategy: fallback
        llm_providers:{providers}
        model_aliases:
          fast: {alias_target}
        api_keys:{clients}
        """)


def chat(client: httpx.Client, model: str = "fast") -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]})


def answer(client: httpx.Client) -> str:
    response = chat(client)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def ready(gw: Gateway) -> dict[str, Any]:
    return gw.readiness()


def wait_for_reload_error(gw: Gateway, needle: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ready(gw)
        if status["last_reload"]["result"] == "error" and needle in (status["last_reload"]["error"] or ""):
            return status
        time.sleep(0.05)
    raise AssertionError(f"no reload error with {needle!r}: {ready(gw)['last_reload']}\n{gw.logs()[-3000:]}")


@pytest.fixture
def texts(fake: FakeUpstream, fake2: FakeUpstream) -> None:
    fake.set_default(Behaviour(text="from one"))
    fake2.set_default(Behaviour(text="from two"))


class Load:
    """Authenticated chat requests from several threads until stopped; counts statuses and answers."""

    def __init__(self, gw: Gateway, threads: int = 4):
        self.gw, self.threads = gw, threads
        self.statuses: Counter[int] = Counter()
        self.answers: set[str] = set()
        self.stop = threading.Event()
        self._pool = ThreadPoolExecutor(threads)
        self._futures: list[Any] = []
        self._lock = threading.Lock()

    def _loop(self) -> None:
        with self.gw.client() as client:
            while not self.stop.is_set():
                response = chat(client)
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.answers.add(response.json()["choices"][0]["message"]["content"])

    def __enter__(self) -> Load:
        self._futures = [self._pool.submit(self._loop) for _ in range(self.threads)]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for future in self._futures:
            future.result(timeout=30)
        self._pool.shutdown()


def slow_write(path: Path, text: str, cut: int, pause_s: float = 1.0) -> None:
    """What ``cat new.yaml > config.yaml`` does with a slow source: truncate, write a part, pause,
    write the rest (in place, the same inode)."""
    with open(path, "w") as handle:
        handle.write(text[:cut])
        handle.flush()
        os.fsync(handle.fileno())
        time.sleep(pause_s)
        handle.write(text[cut:])


def mid_line_half(text: str) -> int:
    cut = len(text) // 2
    return cut + 1 if text[cut - 1] == "\n" else cut


@pytest.mark.parametrize("where, refused_on_the_way", [
    ("half, cut mid-line", False),  # an unfinished last line: the watcher waits for the rest
    ("everything before api_keys", True),  # whole lines, no clients: the reload refuses it
    ("nothing (empty)", True),  # an empty document: the reload refuses it
])
def test_a_slowly_written_config_is_never_applied_half_written(start_gateway: Callable[..., Gateway],
                                                                fake: FakeUpstream, fake2: FakeUpstream,
                                                                texts: None, where: str,
                                                                refused_on_the_way: bool) -> None:
    gw = start_gateway(config_text(fake, fake2, "one:m1"))
    version = ready(gw)["config"]["version"]
    new = config_text(fake, fake2, "two:m2")
    cut = {"half, cut mid-line": mid_line_half(new), "everything before api_keys": new.index("\napi_keys:") + 1,
           "nothing (empty)": 0}[where]
    with Load(gw) as load:
        time.sleep(0.3)
        slow_write(gw.config_path, new, cut, pause_s=1.0)
        gw.wait_for_version_change(version, timeout=10)
        deadline = time.monotonic() + 10
        while "from two" not in load.answers and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert load.statuses[401] == 0, load.statuses
    assert set(load.statuses) == {200}, load.statuses
    assert sum(load.statuses.values()) >= 50, load.statuses
    assert load.answers == {"from one", "from two"}  # the new config applied after the write ended
    assert ready(gw)["last_reload"]["result"] == "ok"
    assert ("refused on reload" in gw.logs()) == refused_on_the_way


@pytest.mark.parametrize("text, message", [
    ("", "(top level): the document is empty"),
    ("# being rewritten\n", "(top level): the document is empty"),
    (f"api_keys:\n  - {{id: app, key: {CLIENT_KEY}}}\n", "llm_providers: the document has no llm_providers"),
    (f"llm_providers: []\napi_keys:\n  - {{id: app, key: {CLIENT_KEY}}}\n",
     "llm_providers: the reload would leave no providers"),
    ("{good_without_clients}", "api_keys: the reload would drop every client (1 configured now)"),
], ids=["empty", "comments-only", "no-llm_providers", "no-providers", "no-clients"])
def test_a_reload_refuses_what_looks_cut_short(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                               fake2: FakeUpstream, texts: None, text: str, message: str) -> None:
    gw = start_gateway(config_text(fake, fake2))
    version = ready(gw)["config"]["version"]
    text = text.replace("{good_without_clients}", config_text(fake, fake2, "two:m2", clients=" []"))
    gw.write_config(text)
    status = wait_for_reload_error(gw, message)
    field = message.split(":")[0]  # the refused field's own line, where the file has it
    lines = [n + 1 for n, line in enumerate(text.splitlines()) if line.startswith(field + ":")]
    where = f"config.yaml:{lines[0]}: " if lines else "config.yaml: "
    assert where + message in status["last_reload"]["error"]
    assert "refused on reload" in status["last_reload"]["error"]
    assert status["config"]["version"] == version
    with gw.client() as client:
        assert answer(client) == "from one"
    assert "config reload rejected" in gw.logs()


def test_a_restart_applies_a_file_the_reload_refused(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                     fake2: FakeUpstream, texts: None) -> None:
    gw = start_gateway(config_text(fake, fake2))
    gw.write_config(config_text(fake, fake2, "two:m2", clients=" []"))
    wait_for_reload_error(gw, "drop every client")
    with gw.client() as client:
        assert answer(client) == "from one"
    gw.stop()
    gw.start()
    status = ready(gw)
    assert status["config"]["clients"] == 0 and status["last_reload"]["result"] == "initial"
    with gw.client() as client:
        assert chat(client).status_code == 401
        gw.write_config(config_text(fake, fake2, "two:m2"))  # clients come back with a reload
        deadline = time.monotonic() + 10
        while chat(client).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer(client) == "from two"


def test_a_duplicate_key_is_an_error_naming_both_lines(start_gateway: Callable[..., Gateway], fake: FakeUpstream,
                                                       fake2: FakeUpstream, texts: None) -> None:
    gw = start_gateway(config_text(fake, fake2))
    version = ready(gw)["config"]["version"]
    text = config_text(fake, fake2, "two:m2") + "api_keys: []\n"  # appended: today it silently drops every client
    lines = text.splitlines()
    first, second = (n + 1 for n, line in enumerate(lines) if line.startswith("api_keys:"))
    gw.write_config(text)
    status = wait_for_reload_error(gw, "duplicate key")
    assert f"config.yaml:{second}: api_keys: duplicate key 'api_keys' (first at line {first})" \
        in status["last_reload"]["error"]
    assert status["config"]["version"] == version
    with gw.client() as client:
        assert answer(client) == "from one"


class HealthProbe:
    """Asks /health over and over from a thread and keeps the slowest answer time."""

    def __init__(self, gw: Gateway):
        self.gw = gw
        self.slowest = 0.0
        self.count = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.gw.base_url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                response = client.get("/health")
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.count += 1
                if response.status_code != 200:
                    self.failures.append(str(response.status_code))
                time.sleep(0.01)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1)) / 1024


def alias_bomb(levels: int = 7) -> str:
    """10 ** levels leaves from a few hundred bytes."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{n}: &lol{n} [" + ", ".join([f"*lol{n - 1}"] * 10) + "]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once_with_bounded_memory(start_gateway: Callable[..., Gateway],
                                                               fake: FakeUpstream, fake2: FakeUpstream,
                                                               texts: None) -> None:
    gw = start_gateway(config_text(fake, fake2))
    assert gw.proc is not None
    version = ready(gw)["config"]["version"]
    rss_before = peak_rss_mb(gw.proc.pid)
    with HealthProbe(gw) as probe:
        time.sleep(0.2)
        written = time.monotonic()
        gw.write_config(config_text(fake, fake2, "two:m2") + alias_bomb(7))  # 10^7 leaves
        status = wait_for_reload_error(gw, "alias bomb", timeout=30)
        refused_after = time.monotonic() - written
        time.sleep(0.3)
    grown = peak_rss_mb(gw.proc.pid) - rss_before
    assert "config.yaml: (top level): YAML aliases expand this document" in status["last_reload"]["error"]
    assert status["config"]["version"] == version
    # the watcher waits 0.3 s for the file to settle; the check itself takes milliseconds
    assert refused_after < 2.0, refused_after
    assert grown < 50, f"peak RSS grew by {grown:.0f} MB"
    assert probe.failures == [] and probe.count > 5
    assert probe.slowest < 0.5, probe.slowest
    with gw.client() as client:
        assert answer(client) == "from one"


def many_clients(count: int) -> str:
    entries = []
    for n in range(count):
        digest = hashlib.sha256(f"client-{n}".encode()).hexdigest()
        entries.append(f"""
          - id: bulk-{n}
            key_hash: "sha256:{digest}"
            allowed_providers: ["one"]
            limits: {{req_per_min: 100, tokens_per_min: 50000}}""")
    return "".join(entries)


def test_serving_does_not_stall_while_a_large_config_is_parsed(start_gateway: Callable[..., Gateway],
                                                               fake: FakeUpstream, fake2: FakeUpstream,
                                                               texts: None) -> None:
    gw = start_gateway(config_text(fake, fake2))
    version = ready(gw)["config"]["version"]
    clients = f"""
          - id: app
            key: {CLIENT_KEY}""" + many_clients(3000)  # ~0.6 MB of YAML: seconds of parsing
    with HealthProbe(gw) as probe:
        time.sleep(0.2)
        gw.write_config(config_text(fake, fake2, "two:m2", clients=clients))
        gw.wait_for_version_change(version, timeout=60)
    assert ready(gw)["config"]["clients"] == 3001
    assert probe.failures == [] and probe.count > 20
    assert probe.slowest < 0.5, probe.slowest
    with gw.client() as client:
        assert answer(client) == "from two"


@pytest.fixture
def unstarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Gateway]]:
    made: list[Gateway] = []

    def make(config: str) -> Gateway:
        gw = Gateway(tmp_path_factory.mktemp("gw"), config)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


def configmap_swap(config_dir: Path, version: str, text: str) -> None:
    """What the kubelet does to a ConfigMap volume: a new timestamped directory, a ``..data_tmp``
    link to it renamed over ``..data`` (one atomic step), then the old directory removed."""
    new_dir = config_dir / f"..2026_{version}"
    new_dir.mkdir()
    (new_dir / "config.yaml").write_text(text)
    old_dir = (config_dir / "..data").resolve() if (config_dir / "..data").is_symlink() else None
    (config_dir / "..data_tmp").symlink_to(new_dir.name)
    os.rename(config_dir / "..data_tmp", config_dir / "..data")
    if old_dir is not None:
        shutil.rmtree(old_dir)


def test_a_kubernetes_configmap_swap_reloads(unstarted: Callable[[str], Gateway], fake: FakeUpstream,
                                             fake2: FakeUpstream, texts: None) -> None:
    gw = unstarted(config_text(fake, fake2, "one:m1"))
    config_dir = gw.config_path.parent
    gw.config_path.unlink()
    configmap_swap(config_dir, "v1", config_text(fake, fake2, "one:m1"))
    gw.config_path.symlink_to("..data/config.yaml")  # config.yaml -> ..data/config.yaml -> ..2026_v1/config.yaml
    gw.start()
    version = ready(gw)["config"]["version"]
    with gw.client() as client:
        assert answer(client) == "from one"
        configmap_swap(config_dir, "v2", config_text(fake, fake2, "two:m2"))
        version = gw.wait_for_version_change(version, timeout=10)
        assert answer(client) == "from two"
        configmap_swap(config_dir, "v3", config_text(fake, fake2, "one:m1"))  # the watch follows the new target
        gw.wait_for_version_change(version, timeout=10)
        assert answer(client) == "from one"
    status = ready(gw)
    assert status["last_reload"]["result"] == "ok", status["last_reload"]
    assert status["config"]["path"] == str(gw.config_path)


def test_a_repointed_symlink_reloads(unstarted: Callable[[str], Gateway], fake: FakeUpstream, fake2: FakeUpstream,
                                     texts: None) -> None:
    gw = unstarted(config_text(fake, fake2, "one:m1"))
    releases = gw.workdir / "releases"
    releases.mkdir()
    (releases / "v1.yaml").write_text(config_text(fake, fake2, "one:m1"))
    (releases / "v2.yaml").write_text(config_text(fake, fake2, "two:m2"))
    gw.config_path.unlink()
    gw.config_path.symlink_to(releases / "v1.yaml")
    gw.start()
    version = ready(gw)["config"]["version"]
    with gw.client() as client:
        assert answer(client) == "from one"
        subprocess.run(["ln", "-sfn", str(releases / "v2.yaml"), str(gw.config_path)], check=True)
        version = gw.wait_for_version_change(version, timeout=10)
        assert answer(client) == "from two"
        # an in-place edit of the file the link points to now (another directory) applies too
        (releases / "v2.yaml").write_text(config_text(fake, fake2, "one:m1"))
        gw.wait_for_version_change(version, timeout=10)
        assert answer(client) == "from one"
    assert ready(gw)["last_reload"]["result"] == "ok"
