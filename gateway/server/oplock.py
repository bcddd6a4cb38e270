"""The operator lock: one ``flock`` that serializes every writer of ``.env`` and the config file.

``./start.sh``, ``./stop.sh``, ``./virtual-key.sh`` and ``./setup.sh`` (its writes of ``.env``
and ``config/config.yaml``) take it with flock(1) through ``scripts/lib.sh``; Python code that
writes those files (``python -m gateway add-client`` and the admin API's key edits, both through
``control/checked_edit.py``) takes the same lock here, so two writers never interleave a
read-modify-write of one file. Hand edits do not take it: ``checked_edit`` guards against those.

The lock file is ``run/gateway.lock`` under the working directory (the checkout's root, as for
``config/config.yaml`` and ``.env``), or ``$GATEWAY_LOCK_FILE`` when that is set; lib.sh
resolves it the same way. Only its flock matters; its text names the holder, for the message
shown to whoever waits.

A shell script that holds the lock on a file descriptor exports ``GATEWAY_LOCK_FD``; a Python
child that inherited that descriptor (same open file, so the same lock) uses it instead of
waiting on its own parent for ever.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..settings import load_settings

DEFAULT_LOCK_FILE = Path("run") / "gateway.lock"
DEFAULT_TIMEOUT_S = 120.0
_POLL_S = 0.05


class LockTimeout(Exception):
    """The operator lock stayed taken by another writer for longer than the timeout."""

    def __init__(self, path: Path, timeout: float, holder: str) -> None:
        self.path = path
        self.timeout = timeout
        self.holder = holder
        super().__init__(f"{path} is still held after {timeout:g} s (by {holder or 'an unknown process'})")


def lock_path(root: Path | None = None) -> Path:
    """Where the lock lives: ``$GATEWAY_LOCK_FILE`` or ``<root or cwd>/run/gateway.lock``."""
    override = load_settings().lock_file
    if override:
        return override
    return (root or Path.cwd()) / DEFAULT_LOCK_FILE


def _inherited_fd(path: Path) -> int | None:
    """The descriptor a parent script holds the lock on, if it is open on ``path`` itself."""
    fd = load_settings().lock_fd
    if fd is None:
        return None
    try:
        held, wanted = os.fstat(fd), os.stat(path)
    except OSError:
        return None
    return fd if (held.st_dev, held.st_ino) == (wanted.st_dev, wanted.st_ino) else None


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[:200]
    except OSError:
        return ""


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(path, timeout, _read_holder(path)) from None
            time.sleep(_POLL_S)


def _write_holder(fd: int, who: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {who} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)


@contextmanager
def operator_lock(who: str, path: Path | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[Path]:
    """Hold the operator lock (blocking up to ``timeout`` seconds) for the ``with`` block.

    ``who`` describes the holder for others' waiting messages (never put a secret in it).
    Blocking: from async code, run it in a thread.
    """
    target = path or lock_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if _inherited_fd(target) is not None:
        yield target  # the parent script holds it for us
        return
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(fd, target, timeout)
        _write_holder(fd, who)
        yield target
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
