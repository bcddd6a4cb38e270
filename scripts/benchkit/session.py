"""What every measurement of a run needs: the arguments, the processes, the tools and the fakes
(``Bench``), with the run's way of starting, warming and stopping a gateway."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit.common import PACED_MODEL, log, request_body
from benchkit.fakes import Fake, start_nginx, start_python_fake
from benchkit.gateway_process import (
    Gateway,
    ensure_alive,
    gateway_log_problems,
    sanity_check,
    sink_counts,
    start_gateway,
)
from benchkit.paced_fake import LONG_STREAM_EVENTS, start_paced_fake
from benchkit.system import Processes, tree_rss
from benchkit.wrk import WrkResult, run_wrk


@dataclass
class Bench:
    """What every phase needs: the arguments, the processes, the tools and the fakes."""
    args: argparse.Namespace
    procs: Processes
    tmp: Path
    python: str
    wrk: str
    lua: Path
    fake: Fake

    def wrk_run(self, port: int, conns: int, duration: float, target: str, transport: str,
                server_pid: int | None = None) -> WrkResult:
        return run_wrk(self.wrk, self.lua, port, conns, duration, target, transport, self.procs, server_pid)

    def warm(self, port: int, target: str, transport: str) -> None:
        if self.args.warmup > 0:
            self.wrk_run(port, max(self.args.levels), self.args.warmup, target, transport)

    def start(self, transport: str | None, tag: str, log_requests: bool = False) -> Gateway:
        gw = start_gateway(self.procs, self.python, self.tmp, self.fake, self.args.workers, transport, tag,
                           log_requests, self.args.with_sink)
        time.sleep(1.0)  # let startup settle before reading idle memory
        ensure_alive(gw, "right after startup")
        gw.idle_rss = tree_rss(gw.proc.pid)
        sanity_check(self.fake, gw)
        return gw

    def stop(self, gw: Gateway, problems: list[str]) -> None:
        if self.args.with_sink and gw.proc.poll() is None:
            counts = sink_counts(gw)
            log(f"sink ({gw.transport}): {counts['delivered']:,.0f} records delivered, {counts['dropped']:,.0f} "
                f"dropped, {counts['errors']:,.0f} failed POSTs")
            if counts["dropped"] or not counts["delivered"]:
                problems.append(f"the webhook sink ({gw.transport}) dropped {counts['dropped']:,.0f} and delivered "
                                f"{counts['delivered']:,.0f} records")
        if gw.proc.poll() is not None:
            problems.append(f"the gateway ({gw.transport}) exited during the run with status {gw.proc.returncode}")
        log_lines = gateway_log_problems(gw)
        if log_lines:
            problems.append(f"gateway log ({gw.transport}) has {len(log_lines)} error line(s), "
                            f"first: {log_lines[0][:300]}")
        self.procs.stop(gw.proc)

    @property
    def paced_body(self) -> bytes:
        return request_body(True, PACED_MODEL)

    @property
    def paced_long_body(self) -> bytes:
        """Streams of ``LONG_STREAM_EVENTS`` events (the paced fake reads ``max_tokens``)."""
        return request_body(True, PACED_MODEL)[:-1] + f',"max_tokens":{LONG_STREAM_EVENTS - 2}}}'.encode()


def start_fakes(args: argparse.Namespace, procs: Processes, tmp: Path, tools: dict[str, str]) -> Fake:
    log(f"starting the fake upstreams ({args.fake}, and the paced SSE one)")
    python = sys.executable
    fake = start_nginx(procs, tools["nginx"], tmp) if args.fake == "nginx" else start_python_fake(procs, python, tmp)
    fake.paced_port, _ = start_paced_fake(procs, python, tmp, args.stream_events, args.stream_interval)
    sanity_check(fake, None)
    return fake
