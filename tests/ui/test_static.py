"""The dashboard's files: served from the package with the right types, ETags and a strict CSP;
nothing outside gateway/ui reachable; carried by a built wheel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Gateway

UI = REPO / "gateway" / "ui"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def ui_files() -> list[Path]:
    return sorted(p for p in UI.rglob("*") if p.is_file() and p.suffix in TYPES)


def get(gw: Gateway, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(gw.base_url + path, headers=headers or {}, timeout=10)


def test_the_index_is_served_at_ui_with_a_strict_csp(ui_gateway: Gateway) -> None:
    for path in ("/ui", "/ui/", "/ui/index.html"):
        response = get(ui_gateway, path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert response.content == (UI / "index.html").read_bytes()
        csp = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp and "http" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"


def test_every_file_is_served_with_its_type_and_an_etag(ui_gateway: Gateway) -> None:
    assert len(ui_files()) >= 10
    for path in ui_files():
        rel = path.relative_to(UI).as_posix()
        response = get(ui_gateway, "/ui/" + rel)
        assert response.status_code == 200, rel
        assert response.headers["content-type"].startswith(TYPES[path.suffix]), rel
        assert response.content == path.read_bytes()
        assert response.headers["cache-control"] == "no-cache"
        etag = response.headers["etag"]
        again = get(ui_gateway, "/ui/" + rel, {"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/../gateway/app.py", "/ui/%2e%2e/gateway/app.py",
                                  "/ui/vendor/uPlot.LICENSE", "/ui/js", "/ui/..%2f..%2fpyproject.toml"])
def test_nothing_else_is_served(ui_gateway: Gateway, path: str) -> None:
    response = get(ui_gateway, path)
    assert response.status_code == 404
    assert "[project]" not in response.text and "import" not in response.text


def test_no_inline_script_or_style_and_nothing_from_the_internet() -> None:
    index = (UI / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", index):
        assert "src=" in tag
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", index) is None
    assert "<style" not in index and " style=" not in index and " on" + "click=" not in index
    for path in ui_files():
        text = path.read_text(errors="replace")
        assert re.search(r"""(src|href)=["']?(https?:)?//""", text) is None, path
        assert re.search(r"""\bimport\b[^;'"]*["']https?://""", text) is None, path
        assert "fetch(\"http" not in text and "fetch('http" not in text, path


def test_the_ui_talks_only_to_the_admin_and_session_api() -> None:
    paths: set[str] = set()
    for path in (UI / "js").glob("*.js"):
        text = path.read_text()
        paths |= set(re.findall(r"""["'`](/(?:admin|ui|api|v1)[^"'`?]*)""", text))
        paths |= {"/admin/v1" + p for p in re.findall(r"""admin\.\w+\(\s*[`"'](/[^`"'?$]*)""", text)}
    for p in paths:
        assert p.startswith(("/admin/v1", "/ui/api/")), p


def test_vendor_library_ships_with_its_license() -> None:
    assert (UI / "vendor" / "uPlot.esm.min.js").stat().st_size > 10_000
    assert "MIT" in (UI / "vendor" / "uPlot.LICENSE").read_text() or "Permission is hereby granted" in (
        UI / "vendor" / "uPlot.LICENSE").read_text()
    assert (UI / "vendor" / "README.md").is_file()


@pytest.mark.slow
def test_a_built_wheel_carries_the_dashboard(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(REPO / "gateway", source / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, timeout=300, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("llm_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ui_files() + [UI / "vendor" / "uPlot.LICENSE"]:
        assert "gateway/ui/" + path.relative_to(UI).as_posix() in names, path
