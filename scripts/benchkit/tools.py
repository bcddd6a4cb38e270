"""The outside tools a run needs (wrk, nginx), installed with apt-get when missing and running as
root; and the versions the report names (tools, Python packages, the commit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchkit.common import REPO, log

SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def which(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    for d in SBIN_DIRS:
        path = Path(d, binary)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def ensure_tools(fake: str) -> dict[str, str]:
    need = {"wrk": "wrk"}
    if fake == "nginx":
        need["nginx"] = "nginx-light"
    missing = {b: pkg for b, pkg in need.items() if which(b) is None}
    if missing:
        _install(missing, fake)
    paths = {b: which(b) for b in need}
    still = [b for b, p in paths.items() if p is None]
    if still:
        print(f"scripts/bench: {', '.join(still)} still not found after installing", file=sys.stderr)
        raise SystemExit(2)
    return {b: str(p) for b, p in paths.items()}


def _install(missing: dict[str, str], fake: str) -> None:
    """apt-get the Debian packages of the ``missing`` binaries, or exit 2 saying how to."""
    pkgs = sorted(set(missing.values()))
    if os.geteuid() == 0 and which("apt-get"):
        log(f"installing {' '.join(pkgs)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for argv in (["apt-get", "update", "-qq"],
                     ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs]):
            done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise SystemExit(f"scripts/bench: `{' '.join(argv)}` failed:\n{done.stderr[-2000:]}")
        return
    hint = "sudo apt-get install -y " + " ".join(pkgs)
    if fake == "nginx" and "nginx" in missing:
        hint += "   (or use --fake python, which needs no nginx)"
    print(f"scripts/bench: missing {', '.join(sorted(missing))}; not root, so not installing it.\n"
          f"  Install it with:  {hint}", file=sys.stderr)
    raise SystemExit(2)


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout.strip().splitlines() or ["?"])[0]


def module_version(module: str) -> str:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:  # noqa: BLE001
        return "?"


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if done.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"
