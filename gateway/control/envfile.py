"""Edit the operator's ``.env`` safely: mode 600 from the first byte, atomic rename.

Standard library only: ``scripts/envfile.py`` (which ``setup.sh`` runs before the venv exists)
uses these same functions.
"""

from __future__ import annotations

import os
import re
import tempfile

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def write_private(path: str, text: str) -> None:
    """Replace ``path`` with ``text``: a mode-600 temp file in the same directory, renamed over it.

    ``mkstemp`` creates the file 0600 whatever the umask (a umask only takes bits away), so the
    secret is never readable by others, and the process-wide umask is left alone: this runs on a
    worker thread of the admin API while other threads may create files.
    """
    fd, tmp = tempfile.mkstemp(prefix=".env.", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _assignments(lines: list[str], name: str) -> list[int]:
    return [i for i, line in enumerate(lines) if re.match(rf"\s*(export\s+)?{name}\s*=", line)]


def set_value(text: str, name: str, value: str) -> str:
    """Set ``name``: replace its assignment (dropping repeats), else fill its ``# NAME=`` placeholder,
    else append it."""
    lines = text.splitlines()
    line = f"{name}={value}"
    active = _assignments(lines, name)
    placeholder = [i for i, text_line in enumerate(lines) if re.match(rf"#\s*{name}\s*=\s*$", text_line)]
    if active:
        lines[active[0]] = line
        lines = [text_line for i, text_line in enumerate(lines) if i not in active[1:]]
    elif placeholder:
        lines[placeholder[0]] = line
    else:
        lines.append(line)
    return "\n".join(lines) + "\n"


def remove_value(text: str, name: str) -> str:
    """Drop every assignment of ``name`` (comments and other lines stay as they are)."""
    lines = text.splitlines()
    gone = set(_assignments(lines, name))
    kept = [line for i, line in enumerate(lines) if i not in gone]
    return "\n".join(kept) + "\n" if kept else ""


def next_numbered(base: str, taken: set[str]) -> str:
    """The next free name in the ``BASE``, ``BASE_2``, ``BASE_3`` … series: past the highest one in use."""
    pattern = re.compile(rf"^{re.escape(base)}(?:_(\d+))?$")
    numbers = [int(m.group(1) or 1) for m in map(pattern.match, taken) if m]
    if not numbers:
        return base
    return f"{base}_{max(numbers) + 1}"
