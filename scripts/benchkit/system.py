"""The processes a run starts (each in its own session, stopped by its group) and what the run reads
of the machine from /proc: a process tree, its memory and CPU time, how busy the CPUs are; CPU
pinning and the open-file limit."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from benchkit.common import GATEWAY_PIN, log
from benchkit.tools import which


class Processes:
    """Every process this run starts, each in its own session so its whole group can be stopped."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._forking: set[int] = set()  # pids of servers that have children (Granian, nginx)

    def start(self, name: str, argv: list[str], forks: bool = False, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self._procs.append((name, proc))
        if forks:
            self._forking.add(proc.pid)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the process group we created for ``proc`` (by its id), then wait; SIGKILL if it lingers.

        A leader that already exited is left alone unless it is a forking server, whose group
        (its session, which we created) lives on while its workers do.
        """
        if proc.poll() is not None and proc.pid not in self._forking:
            self._procs = [(n, p) for n, p in self._procs if p is not proc]
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Children that ignored the signal (or were still shutting down) go too.
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        self._forking.discard(proc.pid)

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self._procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"could not stop pid {proc.pid}: {exc}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> dict[str, Any]:
    pids = process_tree(root)
    per = {pid: rss_kib(pid) for pid in pids}
    return {"total_mib": sum(per.values()) / 1024, "processes": len(pids),
            "per_process_mib": {str(pid): kib / 1024 for pid, kib in per.items()}}


def machine_ticks() -> tuple[int, int]:
    """All CPUs' (total, idle) ticks so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)


def busy_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share (%) of all CPUs busy between two ``machine_ticks`` readings."""
    (total0, idle0), (total1, idle1) = before, after
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def cpu_busy_percent(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat), to flag a machine already loaded."""
    before = machine_ticks()
    time.sleep(seconds)
    return busy_between(before, machine_ticks())


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds used so far by ``root`` and its descendants."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pin_cpus(enabled: bool) -> None:
    """Gateway on CPU 0 (``taskset -c 0``), this process (the load generators) and the fakes it
    starts on CPU 1, when there are two CPUs or more and taskset exists."""
    taskset = which("taskset")
    if not enabled or (os.cpu_count() or 1) < 2 or taskset is None:
        log("not pinning CPUs" + ("" if enabled else " (--no-pin)"))
        return
    GATEWAY_PIN[:] = [taskset, "-c", "0"]
    os.sched_setaffinity(0, {1})


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
