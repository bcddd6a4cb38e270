"""One worker, one process: Granian's embedded server inside this interpreter.

With a single worker, Granian's usual supervisor process only watches the worker and costs
about 30 MB; running the server embedded drops it. SIGTERM/SIGINT stop the server
gracefully (requests in flight finish, then the lifespan shutdown runs). Several workers use
Granian's own process manager (``serve`` execs it). Granian labels its embedded server
experimental (that start-up warning is filtered); the gateway's tests run on it, graceful
stop included, and ``GATEWAY_EMBEDDED=0`` switches back to the supervisor process.
"""

from __future__ import annotations

import asyncio
import logging
import signal

# Granian's own lines in the same one-JSON-object-a-line format as the gateway's
GRANIAN_LOGGING = {
    "formatters": {"json": {"()": "gateway.observability.logging.JsonFormatter"}},
    "handlers": {"console": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"_granian": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}


async def _serve(host: str, port: int, log_level: str) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    from ..app import create_app

    logging.getLogger("_granian").addFilter(lambda record: "is experimental" not in record.getMessage())
    server = Server(create_app, address=host, port=port, interface=Interfaces.ASGI, factory=True,
                    websockets=False, log_level=LogLevels(log_level), backlog=1024, log_dictconfig=GRANIAN_LOGGING)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


def run(host: str, port: int, log_level: str) -> None:
    try:
        import uvloop

        uvloop.run(_serve(host, port, log_level))
    except ImportError:
        asyncio.run(_serve(host, port, log_level))
