"""Replace one operator file by a rename, only if it still holds what the edit was made from.

The new text goes to a temp file in the same directory (mode 600 from the first byte, then the
mode asked for) and is renamed over the file, so a reader (the config watcher) sees the old file
or the new one, never half of it. A symlinked file (a ConfigMap mount, a re-pointed link) has
its target replaced, so the link stays.

POSIX has no compare-and-rename: a hand edit that lands between the last check and the rename
would be replaced. On Linux, ``renameat2(RENAME_EXCHANGE)`` swaps the new file in and leaves the
one it displaced under the temp name, so what the rename replaced is checked *after* the swap:
if it is not what the edit was made from, it is swapped back (the hand edit stays in place) and
``Changed`` tells the caller to start again. Where the exchange is missing (another OS, a
filesystem without it), the check is made immediately before ``os.replace``, and a rename or
write in the microseconds between the two is lost.

What no rename-based writer can catch: a process that opened the file before the swap and writes
to it after the displaced copy was checked. Its bytes go to the replaced file, as they would when
any editor saves by rename; ``echo >> file`` opens and writes within microseconds.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger("gateway.control")

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


class Changed(Exception):
    """The file no longer holds what the edit was made from; the edit was not applied."""


def read(path: Path) -> bytes | None:
    """The file's bytes (through a symlink), or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; False when this system or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(b))


def _temp(target: Path, data: bytes, mode: int) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(name, mode)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _put_back(tmp: Path, target: Path, ours: bytes) -> None:
    """Swap the displaced file (at ``tmp``) back into place. What comes back should be our file;
    if it is not, someone wrote over ours in the microseconds since the swap: that write is kept
    beside the file rather than deleted, and said so."""
    _exchange(tmp, target)
    if read(tmp) != ours:
        kept = target.with_name(f"{target.name}.concurrent-{time.time_ns()}")
        os.rename(tmp, kept)
        log.warning("two writes raced an edit of %s; the later one is kept as %s", target, kept.name)


def _create(tmp: Path, target: Path) -> None:
    """Give ``target`` (missing when read) the temp file's content, only if it is still missing."""
    try:
        os.link(tmp, target)  # fails if the name exists: create-if-missing in one step
    except FileExistsError:
        raise Changed(str(target)) from None
    except OSError:  # no hard links on this filesystem: check, then rename
        if read(target) is not None:
            raise Changed(str(target)) from None
        os.replace(tmp, target)


def _install(tmp: Path, target: Path, seen: bytes | None, ours: bytes) -> None:
    if read(target) != seen:
        raise Changed(str(target))
    if seen is None:
        _create(tmp, target)
        return
    try:
        swapped = _exchange(tmp, target)
    except FileNotFoundError:  # removed since the check
        raise Changed(str(target)) from None
    if not swapped:
        os.replace(tmp, target)  # no exchange here: the window is the microseconds since the check
    elif read(tmp) != seen:  # tmp now holds what the swap displaced: an edit made since the check
        _put_back(tmp, target, ours)
        raise Changed(str(target))


def replace_if_unchanged(path: Path, seen: bytes | None, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` if it still holds ``seen`` (None: still missing), else raise
    ``Changed`` and leave it as it is. ``mode``: the new file's mode (default: the old file's, or 644)."""
    target = path.resolve()
    if mode is None:
        mode = target.stat().st_mode & 0o777 if seen is not None and target.exists() else 0o644
    ours = text.encode("utf-8")
    tmp = _temp(target, ours, mode)
    try:
        _install(tmp, target, seen, ours)
    finally:
        if tmp.exists():
            tmp.unlink()
    if path.resolve() != target:  # the link was re-pointed meanwhile: the path does not show our write
        raise Changed(str(path))


def remove_if_unchanged(path: Path, seen: bytes) -> None:
    """Remove ``path`` if it still holds ``seen`` (the check is made immediately before)."""
    if read(path) != seen:
        raise Changed(str(path))
    path.resolve().unlink()
