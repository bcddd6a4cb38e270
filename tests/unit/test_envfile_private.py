"""``.env`` writes (gateway/control/envfile.py): mode 600 whatever the umask, and the umask left alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.control.envfile import write_private


def test_env_is_written_mode_600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    before = os.umask(0)
    try:
        write_private(str(path), "GATEWAY_MASTER_KEY=sk-secret\n")
        assert os.umask(0) == 0  # the process umask was not touched
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "GATEWAY_MASTER_KEY=sk-secret\n"
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temp file left behind
