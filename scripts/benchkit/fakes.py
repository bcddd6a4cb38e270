"""The fast fake upstreams: nginx answering fixed bytes (a completion on one port, an SSE stream on
another), or tests/fake_upstream.py on one port for both."""

from __future__ import annotations

import functools
import json
import os
import select
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit.common import ANSWER_TEXT, MODEL, REPO, BenchError, all_healthy, free_port, log_tail, wait_until
from benchkit.system import Processes
from benchkit.tools import tool_version


def completion_json() -> str:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER_TEXT},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }, separators=(",", ":"))


def sse_body() -> str:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    pieces = ["Hello from", " the fake", " upstream"]
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
    out = "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)
    return out + "data: [DONE]\n\n"


def nginx_string(text: str) -> str:
    if "$" in text:
        raise ValueError("nginx return text must not contain '$' (variables)")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


@dataclass
class Fake:
    kind: str
    json_port: int  # non-streaming answers on CHAT_PATH
    sse_port: int  # streaming answers on CHAT_PATH
    proc: subprocess.Popen[bytes]
    version: str
    paced_port: int = 0  # the paced SSE fake (concurrent streams, CPU per event)


def nginx_preamble(root: Path) -> str:
    """An nginx.conf up to the servers of its ``http`` block (which the caller adds, then closes):
    one worker in the foreground, files under ``root``, long keep-alive, no access log."""
    return textwrap.dedent(f"""\
        worker_processes 1;
        daemon off;
        master_process on;
        pid {root}/nginx.pid;
        error_log {root}/error.log warn;
        events {{ worker_connections 2048; multi_accept on; }}
        http {{
            access_log off;
            client_body_temp_path {root}/client_body;
            proxy_temp_path {root}/proxy;
            fastcgi_temp_path {root}/fastcgi;
            uwsgi_temp_path {root}/uwsgi;
            scgi_temp_path {root}/scgi;
            keepalive_requests 10000000;
            keepalive_timeout 300s;
            client_body_buffer_size 64k;
            server_tokens off;
        """)


def nginx_servers(json_port: int, sse_port: int) -> str:
    """The two servers of the fixed answers (and the closing of the ``http`` block); ``POST /sink``
    on the first takes a webhook sink's batches (``--with-sink``) with 204."""
    completion, sse = nginx_string(completion_json()), nginx_string(sse_body())
    return textwrap.dedent(f"""\
            server {{
                listen 127.0.0.1:{json_port} backlog=4096;
                location = /v1/chat/completions {{ default_type application/json; return 200 {completion}; }}
                location = /v1/stream {{ default_type text/event-stream; return 200 {sse}; }}
                location = /health {{ default_type text/plain; return 200 'ok'; }}
                location = /sink {{ return 204; }}
            }}
            server {{
                listen 127.0.0.1:{sse_port} backlog=4096;
                location = /v1/chat/completions {{ default_type text/event-stream; return 200 {sse}; }}
                location = /health {{ default_type text/plain; return 200 'ok'; }}
            }}
        }}
        """)


def start_nginx(procs: Processes, nginx: str, tmp: Path) -> Fake:
    root = tmp / "nginx"
    root.mkdir()
    for attempt in range(3):
        json_port, sse_port = free_port(), free_port()
        if json_port == sse_port:
            continue
        conf_path = root / "nginx.conf"
        conf_path.write_text(nginx_preamble(root) + nginx_servers(json_port, sse_port))
        logf = root / "stderr.log"
        with logf.open("ab") as out:
            argv = [nginx, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf_path)]
            proc = procs.start("nginx", argv, forks=True, stdout=out, stderr=subprocess.STDOUT, cwd=root)

        try:
            wait_until(functools.partial(all_healthy, json_port, sse_port), "nginx", 10, proc, root / "error.log")
        except BenchError:
            procs.stop(proc)
            if attempt == 2:
                raise
            continue  # probably lost a port race; try new ports
        return Fake("nginx", json_port, sse_port, proc, tool_version([nginx, "-v"]))
    raise BenchError("could not start nginx")


def start_python_fake(procs: Processes, python: str, tmp: Path) -> Fake:
    logf = tmp / "fake_upstream.log"
    with logf.open("ab") as err:
        proc = procs.start("fake_upstream", [python, str(REPO / "tests" / "fake_upstream.py"), "--port", "0"],
                           stdout=subprocess.PIPE, stderr=err, cwd=REPO)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if proc.poll() is not None:
            raise BenchError(f"fake_upstream.py exited with {proc.returncode}{log_tail(logf)}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                break
            line += chunk
    if not line.startswith(b"READY "):
        raise BenchError(f"fake_upstream.py did not print READY (got {line!r}){log_tail(logf)}")
    port = int(line.split()[1])
    return Fake("python", port, port, proc, "tests/fake_upstream.py (aiohttp)")
