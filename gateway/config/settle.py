"""Read files once they have stopped changing.

A save is not one event: ``cat new.yaml > config.yaml`` truncates the file, then writes it in
pieces, and a slow writer pauses in between. A reload reads the files, waits, and reads them
again until two reads ``quiet_s`` apart agree on content and on (inode, mtime, size). A file
whose last line is unfinished (no final newline: a write cut mid-line) must stay unchanged
for ``unfinished_quiet_s`` instead. The content returned is the content that was compared,
so what is parsed is exactly what was seen to be stable.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

QUIET_S = 0.3
UNFINISHED_QUIET_S = 1.5
MAX_WAIT_S = 10.0

Stamp = tuple[int, int, int]  # inode, mtime in ns, size


@dataclass(frozen=True)
class FileState:
    """One read of one file: its bytes, or why it could not be read."""

    data: bytes | None
    stamp: Stamp | None
    error: str | None = None

    @property
    def unfinished(self) -> bool:
        return self.data is not None and len(self.data) > 0 and not self.data.endswith(b"\n")


def stamp_of(path: Path) -> Stamp | None:
    """(inode, mtime, size) of what ``path`` points to now; None if it cannot be reached."""
    try:
        info = os.stat(path)  # follows symlinks: a re-pointed link changes the stamp
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def read_state(path: Path) -> FileState:
    before = stamp_of(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return FileState(None, None, "the file does not exist")
    except OSError as exc:
        return FileState(None, None, exc.strerror or str(exc))
    after = stamp_of(path)
    # a stamp that moved during the read marks the state as unsettled: the next read differs
    return FileState(data, after if before == after else None)


def read_states(paths: tuple[Path, ...]) -> tuple[FileState, ...]:
    return tuple(read_state(path) for path in paths)


async def read_settled(paths: tuple[Path, ...], quiet_s: float = QUIET_S,
                       unfinished_quiet_s: float = UNFINISHED_QUIET_S,
                       max_wait_s: float = MAX_WAIT_S) -> tuple[FileState, ...]:
    """The files' contents once they have been unchanged for long enough (or after ``max_wait_s``:
    a file rewritten without end is then read as it is, and validation has the last word)."""
    started = time.monotonic()
    states = await asyncio.to_thread(read_states, paths)
    stable_since = time.monotonic()
    while time.monotonic() - started < max_wait_s:
        needed = unfinished_quiet_s if any(s.unfinished for s in states) else quiet_s
        remaining = needed - (time.monotonic() - stable_since)
        if remaining <= 0 and all(s.stamp is not None or s.data is None for s in states):
            return states
        await asyncio.sleep(max(min(remaining, quiet_s), 0.05))
        again = await asyncio.to_thread(read_states, paths)
        if again != states:
            states, stable_since = again, time.monotonic()
    return states
