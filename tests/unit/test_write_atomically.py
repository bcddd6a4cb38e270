"""The one atomic writer of config.yaml (``virtual-key.sh``/``add-client`` and the admin API's key edits)."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.control.clients import write_atomically


def test_a_plain_file_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    path.chmod(0o640)
    write_atomically(path, "new\n")
    assert path.read_text() == "new\n" and (path.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temp file left


def test_a_symlinked_config_keeps_its_link_and_has_its_target_replaced(tmp_path: Path) -> None:
    data = tmp_path / "..data"
    data.mkdir()
    (data / "config.yaml").write_text("old\n")
    link = tmp_path / "config.yaml"
    link.symlink_to(Path("..data") / "config.yaml")
    write_atomically(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(Path("..data") / "config.yaml")
    assert (data / "config.yaml").read_text() == "new\n"
