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


@pytest.mark.parametrize("path", modules("observability"), ids=str)
def test_observability_never_imports_the_pipeline_routing_or_the_http_layer(path):
    # the request path calls into observability (records, spans), never the other way round
    assert not {m for m in imports_of(path) if m.startswith(("gateway.pipeline", "gateway.routing", "gateway.api"))}


# the modules that bring OpenTelemetry, each imported only when it is needed
OPENTELEMETRY_USERS = (GATEWAY / "observability" / "spans.py", GATEWAY / "observability" / "sinks" / "otlp_logs.py")


@pytest.mark.parametrize("path", [p for p in modules("") if p not in OPENTELEMETRY_USERS], ids=str)
def test_only_the_span_builder_imports_opentelemetry(path):
    # a gateway without tracing never loads OpenTelemetry: only observability/spans.py imports it,
    # and only observability.traces.start_tracing imports that module; the otlp_logs sink's module,
    # which imports it too, is loaded by name when such a sink is built (sinks/registry.py)
    assert not {m for m in imports_of(path) if m.split(".")[0] == "opentelemetry"}
    assert "gateway.observability.sinks.otlp_logs" not in imports_of(path)
    if path.name != "traces.py":
        assert "gateway.observability.spans" not in imports_of(path)


def test_the_checks_see_real_imports():
    assert "gateway.pipeline.Pipeline" in imports_of(GATEWAY / "api" / "openai" / "resources.py")
    assert "gateway.core.call.Call" in imports_of(GATEWAY / "pipeline" / "core.py")


# --- the shape of the house: no import circle, core on its own, small modules, a tidy top level --------

def module_name(path: Path) -> str:
    parts = ["gateway", *path.relative_to(GATEWAY).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the gateway and the gateway modules it imports, wherever the import is
    written (module level, inside a function, under ``TYPE_CHECKING``): each one is an edge.
    ``from package import submodule`` is an edge to the submodule only."""
    paths = {module_name(p): p for p in GATEWAY.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = ["gateway", *path.relative_to(GATEWAY).parent.parts]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, node.module] if node.module else base)
                submodules = {f"{module}.{alias.name}" for alias in node.names} & paths.keys()
                edges.update(submodules)
                if len(submodules) < len(node.names):  # a name defined in ``module`` itself
                    edges.add(module)
        graph[name] = {edge for edge in edges if edge in paths and edge != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_type_only_ones_included():
    assert circles(import_graph()) == []


def test_the_circle_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", modules("core"), ids=str)
def test_core_imports_nothing_else_of_the_gateway(path):
    assert {m for m in imports_of(path) if m.startswith("gateway.") and not m.startswith("gateway.core")} == set()


def test_the_top_of_the_package_holds_only_the_entry_points():
    top = sorted(p.name for p in GATEWAY.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "app.py", "errors.py", "settings.py"]


@pytest.mark.parametrize("path", [*sorted(GATEWAY.rglob("*.py")), *sorted((GATEWAY.parent / "scripts").rglob("*.py"))],
                         ids=str)
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400
