"""Lint and type gates: ruff and ``mypy --strict`` (configured in pyproject.toml) must be clean.

Both run as subprocesses from this interpreter's environment (``./setup.sh --dev`` installs them
with the ``test`` extra), so the README's test command is also the lint and type check.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # a cold mypy run on a loaded 2-core machine takes tens of seconds


def run_tool(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <tool> ...`` from the repository root with this interpreter."""
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    if "No module named" in proc.stderr and proc.returncode != 0:
        pytest.fail(f"{argv[0]} is not installed in {sys.prefix}; run ./setup.sh --dev\n{proc.stderr}")
    return proc


def report(proc: subprocess.CompletedProcess[str]) -> str:
    """The tool's findings, without mypy's notes (an overloaded call lists every variant, pages long)."""
    findings = "".join(line for line in proc.stdout.splitlines(keepends=True) if ": note: " not in line)
    return f"exit {proc.returncode}\n{findings}\n{proc.stderr}"


def test_ruff_is_clean() -> None:
    proc = run_tool("ruff", "check", "--no-fix", "--output-format", "concise", ".")
    assert proc.returncode == 0, "ruff found problems (fix them, or `ruff check --fix`):\n" + report(proc)


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    proc = run_tool("mypy")
    assert proc.returncode == 0, "mypy found problems:\n" + report(proc)
    # The gate covers the whole package: a config that silently checked nothing would pass too.
    checked = re.search(r"no issues found in (\d+) source files", proc.stdout)
    assert checked is not None, report(proc)
    package_files = len(list((REPO / "gateway").rglob("*.py")))
    assert int(checked.group(1)) >= package_files, report(proc)


# A module breaking one rule of each family the gates promise to enforce.
_VIOLATIONS = textwrap.dedent("""\
    import os
    from typing import List

    from pydantic import BaseModel


    class Point(BaseModel):
        x: int


    def untyped(value):
        return value


    def complex_one(n: int) -> int:
        total = 0
    {branches}
        return total


    def rebound() -> None:
        item = 1
        item = "one"
        print(item, Point.model_construct(x="not an int"), os.sep, List)
    """).format(branches="\n".join(f"    if n == {i}:\n        total += {i}" for i in range(16)))


def test_gates_catch_each_rule_family(tmp_path: Path) -> None:
    """The configuration really enables what it claims: strict typing, the pydantic plugin, complexity."""
    module = tmp_path / "violations.py"
    module.write_text(_VIOLATIONS)

    ruff = run_tool("ruff", "check", "--no-cache", "--no-fix", "--output-format", "concise",
                    "--config", str(REPO / "pyproject.toml"), str(module))
    assert ruff.returncode == 1, report(ruff)
    for code in ("UP035", "C901"):  # pyupgrade; mccabe at max-complexity 15 (the function has 17)
        assert f" {code} " in ruff.stdout, f"ruff did not report {code}:\n" + report(ruff)

    mypy = run_tool("mypy", "--config-file", str(REPO / "pyproject.toml"), "--no-incremental",
                    "--cache-dir", str(tmp_path / "mypy_cache"), str(module))
    assert mypy.returncode == 1, report(mypy)
    for code in ("no-untyped-def", "assignment"):  # --strict; a variable rebound to another type
        assert f"[{code}]" in mypy.stdout, f"mypy did not report [{code}]:\n" + report(mypy)
    # Only the pydantic plugin (init_typed) gives model_construct a typed signature.
    assert re.search(r'"model_construct" of "Point" has incompatible type.*\[arg-type\]', mypy.stdout), \
        "the pydantic mypy plugin is not active:\n" + report(mypy)
