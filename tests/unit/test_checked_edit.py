"""The read-change-write every writer of config.yaml and .env goes through (gateway/control/checked_edit.py):
an edit made by hand while the change is computed is kept and the change redone on top of it; files that
keep changing end in ChangedWhileEditing with nothing written; a write that fails leaves no half edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.control.checked_edit import ATTEMPTS, ChangedWhileEditing, EditedFile, edit_files


@pytest.fixture(autouse=True)
def lock_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LOCK_FILE", str(tmp_path / "gateway.lock"))


def test_a_hand_edit_made_while_the_change_is_computed_is_kept_and_the_change_redone(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("a: 1\n")
    calls: list[str] = []

    def change(texts: list[str]) -> tuple[list[str], int]:
        calls.append(texts[0])
        if len(calls) == 1:
            with config.open("a") as handle:  # the operator saves while the change is being validated
                handle.write("# by hand\n")
        return [texts[0] + "b: 2\n"], len(calls)

    assert edit_files([EditedFile(config)], change, "test", 5) == 2
    assert calls == ["a: 1\n", "a: 1\n# by hand\n"]
    assert config.read_text() == "a: 1\n# by hand\nb: 2\n"


def test_files_that_keep_changing_are_refused_with_nothing_written(tmp_path: Path) -> None:
    config, env = tmp_path / "config.yaml", tmp_path / ".env"
    config.write_text("a: 1\n")
    env.write_text("A=1\n")
    edits = 0

    def change(texts: list[str]) -> tuple[list[str], None]:
        nonlocal edits
        edits += 1
        with env.open("a") as handle:
            handle.write(f"# hand edit {edits}\n")
        return [texts[0] + "NEW=1\n", texts[1] + "b: 2\n"], None

    with pytest.raises(ChangedWhileEditing, match=r"^Changed while editing: \.env was edited meanwhile"):
        edit_files([EditedFile(env, private=True), EditedFile(config)], change, "test", 5)
    assert edits == ATTEMPTS
    assert config.read_text() == "a: 1\n"
    assert env.read_text() == "A=1\n" + "".join(f"# hand edit {n}\n" for n in range(1, ATTEMPTS + 1))


def test_a_refusal_from_unchanged_files_is_not_retried(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("a: 1\n")
    calls = 0

    def change(texts: list[str]) -> tuple[list[str], None]:
        nonlocal calls
        calls += 1
        raise ValueError("no such provider")

    with pytest.raises(ValueError, match="no such provider"):
        edit_files([EditedFile(config)], change, "test", 5)
    assert calls == 1


def test_a_write_that_fails_leaves_the_files_written_before_it_as_they_were(tmp_path: Path) -> None:
    config, env = tmp_path / "config.yaml", tmp_path / ".env"
    config.write_text("a: 1\n")
    env.write_text("A=1\n")

    def change(texts: list[str]) -> tuple[list[str], None]:
        return [texts[0] + "NEW=1\n", "b: \udc80\n"], None  # the second cannot be encoded

    with pytest.raises(UnicodeEncodeError):
        edit_files([EditedFile(env, private=True), EditedFile(config)], change, "test", 5)
    assert env.read_text() == "A=1\n" and config.read_text() == "a: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "config.yaml", "gateway.lock"]


def test_a_missing_env_is_created_mode_600(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    edit_files([EditedFile(env, private=True)], lambda texts: ([texts[0] + "A=1\n"], None), "test", 5)
    assert env.read_text() == "A=1\n" and (env.stat().st_mode & 0o777) == 0o600
