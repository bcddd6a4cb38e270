"""The ``file`` sink: access records as JSON lines, the file rotated by size.

Each batch is one append (``O_APPEND``), written on a thread so the event loop never waits on the
disk. Before a batch would take the file past ``max_mb`` (and it holds something), the file is
rotated: ``path.{keep-1}`` → ``path.{keep}`` … ``path`` → ``path.1`` (the oldest beyond ``keep``
deleted; ``keep: 0`` keeps none), and a new file is started. Several workers may share the
file: rotation takes an exclusive ``flock`` on ``path.lock`` and checks again under it, and a
worker whose open file was rotated away by another notices (the path's inode changed) and
reopens. Files are created with mode 600: with ``capture_content`` they hold prompts and answers.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from .base import SinkContext
from .batch import BatchSink
from .config import FileSinkConfig
from .record import AccessRecord

MB = 1024 * 1024


class RotatingFile:
    """Appends to ``path``, rotating it by size (see the module docstring). Blocking: call on a thread."""

    def __init__(self, path: Path, max_bytes: int, keep: int):
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._fd: int | None = None
        self._inode: int | None = None

    def write(self, data: bytes) -> None:
        fd = self._current()
        size = os.fstat(fd).st_size
        if size and size + len(data) > self.max_bytes:
            self._rotate()
            fd = self._current()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._inode = None

    def _current(self) -> int:
        """The open file, reopened when ``path`` is another file now (another worker rotated it)."""
        try:
            inode: int | None = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self._fd is None or inode != self._inode:
            self.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._inode = os.fstat(self._fd).st_ino
        return self._fd

    def _rotate(self) -> None:
        lock = os.open(str(self.path) + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return
            if stat.st_ino != self._inode:  # another worker rotated it meanwhile
                return
            self._shift()
        finally:
            os.close(lock)  # releases the lock

    def _shift(self) -> None:
        numbered = [Path(f"{self.path}.{n}") for n in range(1, self.keep + 1)]
        if not numbered:
            os.unlink(self.path)
            return
        numbered[-1].unlink(missing_ok=True)
        for older, newer in zip(reversed(numbered), reversed(numbered[:-1]), strict=False):
            if newer.exists():
                os.replace(newer, older)
        os.replace(self.path, numbered[0])


class FileSink(BatchSink):
    def __init__(self, config: FileSinkConfig):
        super().__init__(config)
        self.file = RotatingFile(Path(config.path), int(config.max_mb * MB), config.keep)

    async def deliver(self, batch: list[AccessRecord]) -> None:
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[AccessRecord]) -> None:
        """On the thread: the lines made (serializing a big batch holds the event loop no longer than
        the interpreter's switch interval) and appended in one write."""
        self.file.write(b"".join(record.json() + b"\n" for record in batch))

    async def release(self) -> None:
        await asyncio.to_thread(self.file.close)


def build(config: FileSinkConfig, context: SinkContext) -> FileSink:
    return FileSink(config)
