"""./setup.sh writes the dashboard's sign-in into .env: UI_USERNAME=admin and a generated
UI_PASSWORD, mode 600, never printed, existing values kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.integration.test_scripts import copy_repo, env_values, run, show

pytestmark = pytest.mark.slow


def test_setup_writes_ui_credentials_once_and_never_prints_them(tmp_path: Path) -> None:
    work = copy_repo(tmp_path / "gw")
    first = run(work, "./setup.sh", "--random-ports", timeout=300)
    assert first.returncode == 0, show(first)
    env_file = work / ".env"
    values = env_values(env_file)
    assert values["UI_USERNAME"] == "admin"
    password = values["UI_PASSWORD"]
    assert len(password) >= 24 and password.isascii()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert password not in first.stdout + first.stderr
    assert "UI_PASSWORD" in first.stdout  # says where to find it

    again = run(work, "./setup.sh", timeout=300)
    assert again.returncode == 0, show(again)
    assert env_values(env_file)["UI_PASSWORD"] == password  # kept
    assert password not in again.stdout + again.stderr

    text = env_file.read_text().replace("UI_USERNAME=admin", "UI_USERNAME=ops")
    env_file.write_text("\n".join(line for line in text.splitlines() if not line.startswith("UI_PASSWORD=")) + "\n")
    third = run(work, "./setup.sh", timeout=300)
    assert third.returncode == 0, show(third)
    values = env_values(env_file)
    assert values["UI_USERNAME"] == "ops"  # the operator's choice stays
    assert values["UI_PASSWORD"] and values["UI_PASSWORD"] != password
    assert values["UI_PASSWORD"] not in third.stdout + third.stderr
    assert values["GATEWAY_MASTER_KEY"]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
