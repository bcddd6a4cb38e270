"""The layering rules of DESIGN.md §3, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute ``gateway.…`` names (relative imports resolved)."""
    package = ["gateway", *path.relative_to(GATEWAY).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((GATEWAY / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("api"), ids=str)
def test_the_http_layer_never_imports_providers(path):
    assert not {m for m in imports_of(path) if m.startswith("gateway.providers")}


@pytest.mark.parametrize("path", modules("providers"), ids=str)
def test_providers_never_import_the_http_server_or_the_pipeline(path):
    bad = {m for m in imports_of(path) if m.split(".")[0] == "falcon"
           or m.startswith(("gateway.api", "gateway.pipeline", "gateway.routing"))}
    assert not bad


@pytest.mark.parametrize("path", modules("pipeline"), ids=str)
def test_the_pipeline_reaches_adapters_only_through_the_protocol(path):
    providers = {m for m in imports_of(path) if m.startswith("gateway.providers")}
    assert all(m.startswith("gateway.providers.base") for m in providers), providers
    assert not {m for m in imports_of(path) if m.split(".")[0] == "falcon"}


def test_the_checks_see_real_imports():
    assert "gateway.pipeline.Pipeline" in imports_of(GATEWAY / "api" / "openai" / "resources.py")
    assert "gateway.core.call.Call" in imports_of(GATEWAY / "pipeline" / "core.py")
