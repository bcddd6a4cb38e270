"""The server floor: Granian embedded, as the gateway runs it with one worker
(``gateway/server/embedded.py``), serving a Falcon app that reads the body and answers a fixed
completion: what any Falcon-on-Granian service pays before the gateway's own work.

    python scripts/benchkit --serve-floor PORT        (the run starts it, pinned like the gateway)

It imports nothing else of the bench, so its process is the floor and no more.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

ANSWER = (b'{"id":"chatcmpl-floor","object":"chat.completion","created":1700000000,"model":"m","choices":'
          b'[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
          b'"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}')


def make_app() -> Any:
    import falcon
    import falcon.asgi

    class Chat:
        async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
            await req.stream.read()
            resp.content_type = falcon.MEDIA_JSON
            resp.data = ANSWER

    class Health:
        async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
            resp.text = "ok"

    app = falcon.asgi.App()
    app.add_route("/v1/chat/completions", Chat())
    app.add_route("/health", Health())
    return app


async def serve(port: int) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(make_app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, factory=True,
                    websockets=False, backlog=1024)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    if os.environ.get("GATEWAY_BATCH_HELPER_THREADS") == "true":  # scripts/bench --batch-helper-threads
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
        from gateway.server.sched import LoopFirst

        sweeper = LoopFirst()  # held while serving (the loop keeps only a weak reference to its task)
        sweeper.start()  # as the gateway's start-up does, from this loop's thread
    await server.serve()


def main(port: int) -> None:
    import uvloop

    uvloop.run(serve(port))
