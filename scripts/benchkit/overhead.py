"""Sequential added latency, the method public gateway comparisons use: interleaved rounds of
sequential non-streaming requests on one keep-alive connection per target (direct to the fake
upstream, through the gateway, and optionally through LiteLLM proxy), each round's median per
target, then the median of the round medians, the added latency as the median of the per-round
differences from direct, and the spread of those differences (IQR)."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchkit.common import BenchError, percentile, raw_request, request_body
from benchkit.paced import read_http_response


class SequentialClient:
    """One keep-alive connection sending the same chat completion, one request at a time."""

    def __init__(self, name: str, port: int, request: bytes | None = None):
        self.name, self.port = name, port
        self.request = request if request is not None else raw_request(port, request_body(False))
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, bytearray()
        return sock

    def once(self) -> float:
        """Milliseconds from writing the request to the whole answer read. A keep-alive connection
        the server closed while idle is opened again, and the request sent again on it."""
        try:
            return self._timed()
        except ConnectionError:
            self.close()
            return self._timed()

    def _timed(self) -> float:
        sock = self.sock or self._connect()
        t0 = time.perf_counter()
        sock.sendall(self.request)
        status = read_http_response(sock, self.buf)
        elapsed = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise BenchError(f"{self.name} answered status {status} during the overhead rounds")
        return elapsed

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass
class TargetRounds:
    """One target's requests, round by round (milliseconds)."""
    name: str
    rounds: list[list[float]] = field(default_factory=list)

    @property
    def medians(self) -> list[float]:
        return [statistics.median(r) for r in self.rounds]

    @property
    def all_samples(self) -> list[float]:
        return [x for r in self.rounds for x in r]


def interleaved_rounds(ports: dict[str, int], rounds: int, requests: int, warmup: int,
                       make: Callable[[str, int], SequentialClient] = SequentialClient) -> list[TargetRounds]:
    """``rounds`` rounds of ``requests`` sequential requests per target, the targets taking turns
    within each round in the order given, reversed every other round (so neither always goes first).
    ``make`` builds a target's client (default: the chat completion of ``SequentialClient``)."""
    clients = [make(name, port) for name, port in ports.items()]
    out = {c.name: TargetRounds(c.name) for c in clients}
    try:
        for c in clients:
            for _ in range(warmup):
                c.once()
        for n in range(rounds):
            for c in clients if n % 2 == 0 else reversed(clients):
                out[c.name].rounds.append([c.once() for _ in range(requests)])
    finally:
        for c in clients:
            c.close()
    return list(out.values())


def summarize(targets: list[TargetRounds]) -> dict[str, Any]:
    """Per target: the median of its round medians and the p99 of all its requests; for each target
    but the first (direct): the per-round differences of the medians, their median (the added
    latency), quartiles and IQR, and the added p99."""
    direct = targets[0]
    out: dict[str, Any] = {}
    for t in targets:
        row: dict[str, Any] = {"round_medians_ms": [round(m, 4) for m in t.medians],
                               "median_ms": statistics.median(t.medians), "p99_ms": percentile(t.all_samples, 99)}
        if t is not direct:
            diffs = [g - d for g, d in zip(t.medians, direct.medians, strict=True)]
            q1, _, q3 = statistics.quantiles(diffs, n=4, method="inclusive") if len(diffs) > 1 else [diffs[0]] * 3
            row.update(round_differences_ms=[round(x, 4) for x in diffs], added_ms=statistics.median(diffs),
                       added_q1_ms=q1, added_q3_ms=q3, added_iqr_ms=q3 - q1,
                       added_p99_ms=row["p99_ms"] - percentile(direct.all_samples, 99))
        out[t.name] = row
    return out


def ms(x: float, signed: bool = False) -> str:
    return f"{x:+.3f} ms" if signed else f"{x:.3f} ms"


def overhead_table(summary: dict[str, Any], labels: dict[str, str]) -> list[str]:
    lines = ["| Target | Median of round medians | p99 (all requests) | Added (median of per-round differences) "
             "| IQR of per-round differences | Added p99 |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in summary.items():
        if "added_ms" not in row:
            lines.append(f"| {labels[name]} | {ms(row['median_ms'])} | {ms(row['p99_ms'])} | | | |")
            continue
        lines.append(f"| {labels[name]} | {ms(row['median_ms'])} | {ms(row['p99_ms'])} | {ms(row['added_ms'], True)} "
                     f"| {ms(row['added_iqr_ms'])} ({ms(row['added_q1_ms'], True)} to "
                     f"{ms(row['added_q3_ms'], True)}) | {ms(row['added_p99_ms'], True)} |")
    return lines


def round_table(summary: dict[str, Any], labels: dict[str, str]) -> list[str]:
    names = list(summary)
    head = ["Round", labels[names[0]]]
    for name in names[1:]:
        head += [labels[name], f"{labels[name]} added"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for i, base in enumerate(summary[names[0]]["round_medians_ms"]):
        cells = [str(i + 1), ms(base)]
        for name in names[1:]:
            cells += [ms(summary[name]["round_medians_ms"][i]), ms(summary[name]["round_differences_ms"][i], True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
