"""A stand-in for an operator (or config management) editing ``config.yaml`` and ``.env`` by hand
while the gateway writes them: run as its own process, it edits in turn, with a pause between

- ``append-config`` / ``append-env``: a comment line appended in place (``echo ... >> file``);
- ``model``: one more model in a provider's ``models: [...]`` flow list, the file replaced by a
  rename (how editors and config management save);
- ``rename-env``: a new variable line added to ``.env``, replaced by a rename as well.

Each edit gets the next number; the numbers of the edits made are printed as JSON at the end, so
a test can check that every one of them is still in the files.

The renames are careful: the new file is swapped in with ``renameat2(RENAME_EXCHANGE)`` and, if
what it displaced is not what the edit started from (the gateway wrote in between), that is put
back and the edit done again. So this editor never reverts the gateway's writes and a test can
hold the gateway to every change it answered as made.

    python -m tests.hand_editor CONFIG ENV SECONDS PAUSE_MS [EDIT,EDIT...] [PROVIDER_MODELS_PREFIX]
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

AT_FDCWD = -100
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def careful_rename(path: Path, edit: Callable[[str], str]) -> None:
    """Replace ``path`` with ``edit`` of its text, never displacing a write made after the read."""
    target = path.resolve()
    tmp = target.with_name(f".hand-{os.getpid()}.tmp")
    while True:
        before = target.read_bytes()
        tmp.write_text(edit(before.decode()))
        os.chmod(tmp, target.stat().st_mode & 0o777)
        exchange(tmp, target)
        if tmp.read_bytes() == before:
            tmp.unlink()
            return
        exchange(tmp, target)  # someone wrote after our read: theirs goes back, and we start over
        tmp.unlink()


def main(argv: list[str]) -> int:
    config, env, seconds, pause_ms = Path(argv[1]), Path(argv[2]), float(argv[3]), float(argv[4])
    kinds = (argv[5] if len(argv) > 5 else "append-config,model,append-env,rename-env").split(",")
    models = argv[6] if len(argv) > 6 else "models: [other-model"
    made: dict[str, list[int]] = {kind: [] for kind in kinds}
    edits: dict[str, Callable[[int], None]] = {
        "append-config": lambda n: append(config, f"# hand edit {n}\n"),
        "append-env": lambda n: append(env, f"# hand edit {n}\n"),
        "model": lambda n: careful_rename(config, lambda text: text.replace(models, f"{models}, hand-{n}", 1)),
        "rename-env": lambda n: careful_rename(env, lambda text: text + f"HAND_EDIT_{n}=yes\n"),
    }
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        kind = kinds[n % len(kinds)]
        edits[kind](n)
        made[kind].append(n)
        time.sleep(random.uniform(0.5, 1.5) * pause_ms / 1000)
    print(json.dumps(made))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
