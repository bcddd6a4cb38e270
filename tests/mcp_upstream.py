"""An upstream MCP server for the tests: the official SDK's ``MCPServer`` (formerly FastMCP).

Run it as ``python tests/mcp_upstream.py stdio`` or ``python tests/mcp_upstream.py http --port N``.
Options (HTTP): ``--json`` answers in JSON rather than SSE; ``--token T`` refuses a request whose
``Authorization`` is not ``Bearer T`` (401); ``--legacy-only`` refuses the 2026-07-28 revision
(400), as a server of the previous revision does. ``--name`` names the server.

Tools: ``add(a, b)``; ``countdown(steps, delay_s)`` (progress each step); ``sleep(seconds)``;
``big(size)`` (a text of ``size`` bytes); ``fail()`` (an isError result); ``echo(text)`` (the
text back); ``whoami()`` (the server's name). Resource ``demo://greeting``; prompt
``review(code)``. With ``MCP_EVENTS=<file>`` every call appends a line (``call add``,
``countdown cancelled at step 2``, ...) so a test sees what the server saw, and with
``MCP_HEADERS=<file>`` each HTTP request's Authorization header.
"""

from __future__ import annotations

import argparse
import os

import anyio
from mcp.server.mcpserver import Context, MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("transport", choices=["stdio", "http"])
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--json", action="store_true")
parser.add_argument("--token")
parser.add_argument("--legacy-only", action="store_true")
parser.add_argument("--name", default="demo")
ARGS = parser.parse_args()

server = MCPServer(name=ARGS.name, version="1.0.0", instructions="Test server.")


def event(text: str) -> None:
    path = os.environ.get("MCP_EVENTS")
    if path:
        with open(path, "a") as out:
            out.write(f"{ARGS.name} {text}\n")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    event(f"call add {a} {b}")
    return a + b


@server.tool()
async def countdown(steps: int, delay_s: float, ctx: Context) -> str:
    """Count down, reporting progress at each step."""
    event(f"countdown start {steps}")
    step = 0
    try:
        for step in range(1, steps + 1):
            await ctx.report_progress(progress=step, total=steps, message=f"step {step}/{steps}")
            await anyio.sleep(delay_s)
    except anyio.get_cancelled_exc_class():
        event(f"countdown cancelled at step {step}")
        raise
    event(f"countdown done {steps}")
    return f"counted {steps}"


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    event(f"sleep start {seconds}")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        event("sleep cancelled")
        raise
    event("sleep done")
    return "slept"


@server.tool()
def big(size: int) -> str:
    """A text of `size` bytes."""
    event(f"call big {size}")
    return "x" * size


@server.tool()
def fail() -> str:
    """Always fails."""
    event("call fail")
    raise ValueError("this tool always fails")


@server.tool()
def echo(text: str) -> str:
    """The text as it came (the events file records what arrived)."""
    event(f"echo {text}")
    return text


@server.tool()
def whoami() -> str:
    """The server's name."""
    return ARGS.name


@server.resource("demo://greeting", name="greeting", mime_type="text/plain")
def greeting() -> str:
    """A greeting."""
    return f"hello from {ARGS.name}"


@server.prompt()
def review(code: str) -> str:
    """Ask for a code review."""
    return f"Please review this code:\n\n{code}"


def guarded(app):  # noqa: ANN001, ANN201 - ASGI
    expected = f"Bearer {ARGS.token}".encode() if ARGS.token else None

    async def asgi(scope, receive, send):  # noqa: ANN001
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            record = os.environ.get("MCP_HEADERS")
            if record:
                with open(record, "a") as out:
                    out.write(headers.get(b"authorization", b"-").decode() + "\n")
            refuse = None
            if expected is not None and headers.get(b"authorization") != expected:
                refuse = 401
            elif ARGS.legacy_only and headers.get(b"mcp-protocol-version") == b"2026-07-28":
                refuse = 400
            if refuse is not None:
                await send({"type": "http.response.start", "status": refuse,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"refused"})
                return
        await app(scope, receive, send)

    return asgi


def main() -> None:
    if ARGS.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    app = guarded(server.streamable_http_app(json_response=ARGS.json))
    uvicorn.run(app, host="127.0.0.1", port=ARGS.port, log_level="warning")


if __name__ == "__main__":
    main()
