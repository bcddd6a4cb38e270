"""The one writer of config.yaml and .env (gateway/control/swap.py): a rename that keeps the file's
mode and its symlink, and that never replaces a file which no longer holds what the edit read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.control import swap


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_plain_file_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    path.chmod(0o640)
    swap.replace_if_unchanged(path, b"old\n", "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert names(tmp_path) == ["config.yaml"]  # no temp file left


def test_a_private_file_is_written_mode_600_whatever_it_was(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    swap.replace_if_unchanged(path, b"OLD=1\n", "NEW=1\n", 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "NEW=1\n"


def test_a_symlinked_config_keeps_its_link_and_has_its_target_replaced(tmp_path: Path) -> None:
    data = tmp_path / "..data"
    data.mkdir()
    (data / "config.yaml").write_text("old\n")
    link = tmp_path / "config.yaml"
    link.symlink_to(Path("..data") / "config.yaml")
    swap.replace_if_unchanged(link, b"old\n", "new\n")
    assert link.is_symlink() and os.readlink(link) == str(Path("..data") / "config.yaml")
    assert (data / "config.yaml").read_text() == "new\n" and names(data) == ["config.yaml"]


def test_a_file_changed_since_it_was_read_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old\n# a hand edit\n")
    with pytest.raises(swap.Changed):
        swap.replace_if_unchanged(path, b"old\n", "new\n")
    assert path.read_text() == "old\n# a hand edit\n" and names(tmp_path) == ["config.yaml"]


def test_a_missing_file_is_created_only_while_it_is_still_missing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    swap.replace_if_unchanged(path, None, "A=1\n", 0o600)
    assert path.read_text() == "A=1\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(swap.Changed):
        swap.replace_if_unchanged(path, None, "B=1\n", 0o600)
    assert path.read_text() == "A=1\n" and names(tmp_path) == [".env"]


def test_a_link_repointed_since_the_read_is_a_change(tmp_path: Path) -> None:
    """A ConfigMap update re-points the link at a new file: the edit was made from the old one."""
    for name, text in (("a", "old\n"), ("b", "updated\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(text)
    link = tmp_path / "config.yaml"
    link.symlink_to(Path("a") / "config.yaml")
    seen = swap.read(link)
    link.unlink()
    link.symlink_to(Path("b") / "config.yaml")
    with pytest.raises(swap.Changed):
        swap.replace_if_unchanged(link, seen, "new\n")
    assert (tmp_path / "b" / "config.yaml").read_text() == "updated\n"
    assert (tmp_path / "a" / "config.yaml").read_text() == "old\n"


def test_what_an_exchange_displaced_is_put_back(tmp_path: Path) -> None:
    """The check after the swap: a hand edit found at the temp name goes back in place; a write that
    landed on ours meanwhile (what comes back is not ours) is kept beside the file, not deleted."""
    target, tmp = tmp_path / "config.yaml", tmp_path / ".config.yaml.x.tmp"
    target.write_text("ours\n")
    tmp.write_text("hand edit\n")
    swap._put_back(tmp, target, b"ours\n")
    assert target.read_text() == "hand edit\n" and tmp.read_text() == "ours\n"
    target.write_text("a later write\n")
    tmp.write_text("hand edit\n")
    swap._put_back(tmp, target, b"ours\n")
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("config.yaml.concurrent-")]
    assert target.read_text() == "hand edit\n" and [p.read_text() for p in kept] == ["a later write\n"]


def test_remove_only_what_is_still_ours(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n# by hand\n")
    with pytest.raises(swap.Changed):
        swap.remove_if_unchanged(path, b"A=1\n")
    swap.remove_if_unchanged(path, b"A=1\n# by hand\n")
    assert not path.exists()
