"""Every curl example of the appliance document (``../shared/reference/appliance-api.md``), taken
from the document at test time and run by bash with the real ``curl`` (and ``jq``, ``python3``)
against the real gateway, which talks to fake OpenAI and Anthropic upstreams.

Only hosts, ports and keys change: ``localhost:3000`` and ``localhost:PORT`` become the gateway's
port, the placeholder keys become a client key and the master key, and where the document reads
the port and the master key from the appliance's ``.env`` (``LITELLM_EXTERNAL_PORT``,
``LITELLM_MASTER_KEY``) the commands read ours (``GATEWAY_PORT``, ``GATEWAY_MASTER_KEY``). That
``.env`` is written by the same code as ``setup.sh``'s (``scripts/envfile.py new``) and the client
key by ``python -m gateway add-client`` and ``scripts/envfile.py set VIRTUAL_KEY``, as
``virtual-key.sh`` does, so ``grep VIRTUAL_KEY .env | cut -d= -f2`` finds one value.

The config serves the document's base URL through ``server.base_paths: ["/api/litellm/v1"]``.
Commands of those blocks that are not the gateway's to answer (``docker …``: no engine here and
no container named ``litellm-proxy``) are listed in ``NOT_HERE`` and left out; every curl
command is run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import REPO, Gateway
from tests.fake_anthropic import FakeAnthropic
from tests.fake_upstream import FakeUpstream

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("jq") is None,
                                reason="needs curl and jq")

DOCUMENT_NAME = "appliance-api.md"
BASE_PATH = "/api/litellm/v1"
# the commands in curl blocks that are not the gateway's: the appliance's containers and host tools
NOT_HERE = ("docker ",)
PORT_FROM_ENV = ("grep LITELLM_EXTERNAL_PORT .env", "grep GATEWAY_PORT .env")
MASTER_FROM_ENV = ("grep LITELLM_MASTER_KEY .env", "grep GATEWAY_MASTER_KEY .env")


def document() -> Path:
    """The document in ``shared/reference/`` beside the checkout (or beside a worktree's parent)."""
    for root in (REPO.parent, REPO.parent.parent):
        path = root / "shared" / "reference" / DOCUMENT_NAME
        if path.is_file():
            return path
    raise AssertionError(f"{DOCUMENT_NAME} is not in shared/reference/ beside {REPO}")


def commands(block: str) -> list[str]:
    """The shell commands of a code block: lines joined while a quote is open or a line ends in a
    backslash; comments and blank lines between commands dropped."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.rstrip().endswith("\\") and _complete(pending):
            out.append(pending.rstrip("\n"))
            pending = ""
    assert not pending, f"an unfinished command: {pending}"
    return out


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def curl_blocks(text: str) -> list[list[str]]:
    """The document's bash blocks that hold a curl command, each as its commands."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    return [commands(b) for b in blocks if re.search(r"^\s*curl ", b, re.M)]


def localised(command: str, port: int, virtual_key: str, master_key: str) -> str:
    """``command`` with only the hosts, ports and keys changed (see the module docstring)."""
    command = command.replace("localhost:3000", f"localhost:{port}").replace("localhost:PORT", f"localhost:{port}")
    command = command.replace("sk-xxxxxxxxxxxxx", virtual_key).replace("YOUR_VIRTUAL_KEY", virtual_key)
    command = command.replace("YOUR_MASTER_KEY", master_key)
    return command.replace(*PORT_FROM_ENV).replace(*MASTER_FROM_ENV)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeAnthropic]]:
    anthropic_fake = FakeAnthropic()
    with FakeUpstream() as openai_fake:
        anthropic_fake.start()
        try:
            yield openai_fake, anthropic_fake
        finally:
            anthropic_fake.stop()


def appliance_config(openai_fake: FakeUpstream, anthropic_fake: FakeAnthropic) -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      base_paths: ["{BASE_PATH}"]
    llm_providers:
      - id: anthropic
        type: anthropic
        base_url: {anthropic_fake.base_url}
        api_keys: ["sk-ant-api03-appliance-doc-key-1111"]
        models: [claude-sonnet-4-5]
      - id: openai
        type: openai-compatible
        base_url: {openai_fake.base_url}
        api_keys: ["sk-upstream-appliance-doc-key-2222"]
        models: [gpt-4o]
    api_keys: []
    """)


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory,
              upstreams: tuple[FakeUpstream, FakeAnthropic]) -> Iterator[tuple[Gateway, dict[str, str]]]:
    """The gateway, and the operator's ``.env`` values, from a directory laid out as setup.sh and
    virtual-key.sh leave it (the commands run in that directory)."""
    work = tmp_path_factory.mktemp("appliance")
    gateway = Gateway(work, appliance_config(*upstreams))
    env_file = work / ".env"
    env_file.unlink()
    subprocess.run([sys.executable, str(REPO / "scripts" / "envfile.py"), "new", str(env_file), str(gateway.port)],
                   check=True)
    add = subprocess.run([sys.executable, "-m", "gateway", "add-client", "--id", "agent"], cwd=work,
                         env=gateway.env, capture_output=True, text=True, check=True)
    subprocess.run([sys.executable, str(REPO / "scripts" / "envfile.py"), "set", str(env_file), "VIRTUAL_KEY"],
                   input=add.stdout.strip(), text=True, check=True)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if re.match(r"^[A-Z_]+=", line))
    gateway.start()
    try:
        yield gateway, values
    finally:
        gateway.stop()


MARK = "@@ end of command @@"


def run(block: list[str], cwd: Path) -> list[str]:
    """Run a block's commands in one bash, in order (assignments feed the commands after them);
    each command's output."""
    script = "".join(f"{command}\nprintf '\\n%s\\n' '{MARK}'\n" for command in block)
    done = subprocess.run(["bash", "-c", "set -e\n" + script], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert done.returncode == 0, f"{script}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    outputs = done.stdout.split(f"\n{MARK}\n")
    assert len(outputs) == len(block) + 1, done.stdout
    return outputs[:-1]


def test_every_curl_example_of_the_document_works_as_pasted(appliance: tuple[Gateway, dict[str, str]]) -> None:
    gateway, env = appliance
    virtual, master = env["VIRTUAL_KEY"], env["GATEWAY_MASTER_KEY"]
    blocks = curl_blocks(document().read_text(encoding="utf-8"))
    ran: list[tuple[str, str]] = []
    for block in blocks:
        script = [localised(c, gateway.port, virtual, master) for c in block if not c.startswith(NOT_HERE)]
        ran.extend((c, out) for c, out in zip(script, run(script, gateway.workdir), strict=True)
                   if c.startswith(("curl ", "python3 ")))
    # every curl command of the document, and the python3 line that checks the spec it saved
    assert sum(c.startswith("curl ") for c, _ in ran) == 12, [c for c, _ in ran]
    outputs = "\n".join(out for _, out in ran)
    assert '"error"' not in outputs, outputs[:3000]
    models = json.loads(next(out for c, out in ran if c.startswith("curl -H") and "/models" in c))
    assert {(m["id"], m["owned_by"]) for m in models["data"]} >= {("claude-sonnet-4-5", "anthropic"),
                                                                  ("gpt-4o", "openai")}
    chat = next(json.loads(out) for c, out in ran if '"max_tokens": 1000' in c)
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["content"]
    stream = next(out for c, out in ran if '"stream": true' in c)
    assert stream.rstrip().endswith("data: [DONE]") and '"object":"chat.completion.chunk"' in stream
    assert any({'"claude-sonnet-4-5"', '"gpt-4o"'} <= set(out.splitlines()) for c, out in ran if "'.data[].id'" in c)
    assert any("claude-sonnet-4-5 - anthropic" in out.splitlines() for c, out in ran if "owned_by" in c)
    assert re.search(r"^OpenAPI 3\.1\.0, [1-9][0-9]+ endpoints$", outputs, re.M), outputs[-2000:]


def test_the_documents_openai_sdk_example_works_on_its_base_url(appliance: tuple[Gateway, dict[str, str]]) -> None:
    gateway, env = appliance
    client = OpenAI(base_url=f"http://localhost:{gateway.port}{BASE_PATH}", api_key=env["VIRTUAL_KEY"])
    response = client.chat.completions.create(model="claude-sonnet-4-5",
                                              messages=[{"role": "user", "content": "Hello!"}])
    assert response.choices[0].message.content
    assert {m.id for m in client.models.list()} >= {"claude-sonnet-4-5", "gpt-4o"}
