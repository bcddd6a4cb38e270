"""Read-change-write of the operator's files that never reverts an edit made meanwhile.

Every writer of ``config.yaml`` and ``.env`` in Python (the admin API's provider keys,
``python -m gateway add-client``) goes through ``edit_files``:

1. it holds the operator lock (``gateway/server/oplock.py``, the lock the scripts take) throughout, so
   gateway workers, replicas on the same files and the scripts take turns;
2. it reads every file involved and computes the edit from what it read (``change``);
3. it writes the files that change, in the order given, each only if it still holds what was read
   (``swap.replace_if_unchanged``): a hand edit or config management does not take the lock, and
   the edit took tens of milliseconds to validate;
4. if a file changed, the files already written in this attempt are put back (each only if it
   still holds what was written) and the edit is redone on what the files hold now, up to
   ``ATTEMPTS`` times; then ``ChangedWhileEditing``, with nothing written.

An edit that fails (a config that does not load, say) while the files changed under it is redone
too: it may have read a file halfway through being written in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..server.oplock import operator_lock
from . import swap

ATTEMPTS = 5
T = TypeVar("T")


class ChangedWhileEditing(Exception):
    """The files kept changing while the edit was made: nothing was written; retry."""


@dataclass(frozen=True)
class EditedFile:
    path: Path
    private: bool = False  # written mode 600 whatever its mode was (.env holds secrets)

    @property
    def mode(self) -> int | None:
        return 0o600 if self.private else None


def _text(seen: bytes | None) -> str:
    return "" if seen is None else seen.decode("utf-8")


def _changed(files: Sequence[EditedFile], seen: Sequence[bytes | None]) -> list[str]:
    """The names of the files that no longer hold what was read."""
    return [file.path.name for file, before in zip(files, seen, strict=True) if swap.read(file.path) != before]


def _undo(written: list[tuple[EditedFile, bytes | None, str]]) -> None:
    """Put back what each file held before this attempt wrote it, if it still holds our text."""
    for file, before, text in reversed(written):
        try:
            if before is None:
                swap.remove_if_unchanged(file.path, text.encode("utf-8"))
            else:
                swap.replace_if_unchanged(file.path, text.encode("utf-8"), _text(before), file.mode)
        except swap.Changed:
            pass  # edited since we wrote it: that edit stays


def _commit(files: Sequence[EditedFile], seen: Sequence[bytes | None], new: Sequence[str]) -> list[str]:
    """Write ``new`` where it differs; if a file changed since ``seen``, nothing stays written and its
    name is returned."""
    changed = _changed(files, seen)
    if changed:  # the usual case of a conflict: found before anything is written
        return changed
    written: list[tuple[EditedFile, bytes | None, str]] = []
    try:
        for file, before, text in zip(files, seen, new, strict=True):
            if text != _text(before):
                swap.replace_if_unchanged(file.path, before, text, file.mode)
                written.append((file, before, text))
    except BaseException as exc:  # changed under us, or a write failed (disk full): no half edit stays
        _undo(written)
        if isinstance(exc, swap.Changed):
            return [file.path.name]
        raise
    return []


def edit_files(files: Sequence[EditedFile], change: Callable[[list[str]], tuple[list[str], T]], who: str,
               lock_timeout_s: float) -> T:
    """Apply ``change`` (the files' texts, "" for a missing file → their new texts and a result) to
    ``files`` as the module docstring says, and return its result. Blocking: run it on a thread from
    async code. ``who`` names the lock's holder for whoever waits (never put a secret in it)."""
    changed: list[str] = []
    with operator_lock(who, timeout=lock_timeout_s):
        for _ in range(ATTEMPTS):
            seen = [swap.read(file.path) for file in files]
            try:
                new, result = change([_text(before) for before in seen])
            except Exception:
                changed = _changed(files, seen)
                if not changed:
                    raise
                continue
            changed = _commit(files, seen, new)
            if not changed:
                return result
    verb = "were" if len(changed) > 1 else "was"
    raise ChangedWhileEditing(f"Changed while editing: {' and '.join(changed)} {verb} edited meanwhile, "
                              f"{ATTEMPTS} times in a row; nothing was written, retry")
