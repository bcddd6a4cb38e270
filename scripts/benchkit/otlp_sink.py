"""``--tracing``: an OTLP/HTTP trace sink on loopback that the gateways under test export their
spans to. It reads each ``POST /v1/traces`` body whole and discards it (answering as a
collector does, 200 with an empty protobuf response), so tracing costs the gateway what it
would against a real collector: building the spans, encoding them, and the POSTs of its
exporter thread. ``GET /stats`` says how many exports and bytes came in (the run prints it, so a
"tracing on" row that exported nothing is seen)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchkit.common import PACKAGE_DIR, BenchError, free_port, http_call, log, wait_until
from benchkit.system import Processes


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session uses it
    exports = 0
    bytes_in = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        size = len(self.rfile.read(int(self.headers.get("content-length", "0"))))
        with _Sink.lock:
            _Sink.exports += 1
            _Sink.bytes_in += size
        self._reply(b"", "application/x-protobuf")

    def do_GET(self) -> None:  # noqa: N802
        with _Sink.lock:
            stats = {"exports": _Sink.exports, "bytes": _Sink.bytes_in}
        self._reply(json.dumps(stats).encode(), "application/json")

    def _reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_sink(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Sink).serve_forever()


def start_sink(procs: Processes) -> int:
    """The sink as a process of its own (on the load generators' CPU); its port once it answers."""
    port = free_port()
    proc = procs.start("otlp-sink", [sys.executable, str(PACKAGE_DIR), "--serve-otlp-sink", str(port)])
    wait_until(lambda: http_call(port, "GET", "/stats", timeout=1)[0] == 200, "OTLP sink", 15, proc)
    log(f"tracing on: every gateway exports its spans to the OTLP sink on port {port}")
    return port


def sink_stats(port: int) -> str:
    try:
        status, _, data = http_call(port, "GET", "/stats", timeout=5)
    except OSError as exc:
        raise BenchError(f"the OTLP sink did not answer: {exc}") from exc
    stats = json.loads(data) if status == 200 else {}
    return f"{stats.get('exports', 0)} export(s), {stats.get('bytes', 0) / 1024:.0f} KiB of spans"
