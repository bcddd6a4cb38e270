"""Read the YAML file: parse with line numbers, interpolate ``${VAR}``, validate with pydantic.

Every problem becomes a ``ConfigIssue`` with a path like ``llm_providers[1].api_keys`` and,
where the file has it, a line number. ``ConfigError`` carries all of them at once so an
operator fixes the file in one pass.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import ValidationError

from ..guardrails.config import GUARD_TAGS
from ..observability.sinks.config import SINK_TAGS
from .schema import PROVIDER_TAGS, GatewayConfig
from .yamlcheck import check_nodes

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[Any, ...]
MAX_CONFIG_BYTES = 16 * 2**20


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, filename: str, issues: list[ConfigIssue]):
        self.filename = filename
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(issue.render(self.filename) for issue in self.issues)


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_environment(env_file: Path | None) -> dict[str, str]:
    """The process environment over the operator's ``.env`` (the environment wins)."""
    text = None
    if env_file is not None and env_file.is_file():
        text = env_file.read_text(encoding="utf-8", errors="replace")
    return environment_from(text)


def environment_from(dotenv_text: str | None) -> dict[str, str]:
    """The process environment over the text of a ``.env`` file (None: there is none)."""
    values: dict[str, str] = {}
    if dotenv_text is not None:
        parsed = dotenv_values(stream=io.StringIO(dotenv_text))
        values.update({k: v for k, v in parsed.items() if v is not None})
    values.update(os.environ)
    return values


@dataclass(frozen=True)
class LoadedConfig:
    config: GatewayConfig
    environ: dict[str, str]
    lines: dict[Path_, int]
    source: bytes


def load_config(path: Path, env_file: Path | None) -> LoadedConfig:
    filename = str(path)
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ConfigError(filename, [ConfigIssue("", f"cannot read the file: {exc.strerror}")]) from None
    environ = read_environment(env_file)
    return parse_config(source, filename, environ)


def parse_config(source: bytes, filename: str, environ: dict[str, str]) -> LoadedConfig:
    if len(source) > MAX_CONFIG_BYTES:
        raise ConfigError(filename, [ConfigIssue("", f"the file is larger than {MAX_CONFIG_BYTES // 2**20} MiB; "
                                                     "refused")])
    try:
        node, data = _read_yaml(source, filename)
    except UnicodeDecodeError:
        raise ConfigError(filename, [ConfigIssue("", "the file is not UTF-8 text")]) from None
    except RecursionError:
        raise ConfigError(filename, [ConfigIssue("", "the document is nested too deeply")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(filename, [ConfigIssue("", f"YAML syntax error: {problem}", line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(filename, [ConfigIssue("", "the top level must be a mapping", 1)])

    lines: dict[Path_, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)

    issues: list[ConfigIssue] = []
    data = _interpolate(data, (), environ, issues, lines)
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_issue_from_pydantic(err, lines) for err in exc.errors())
    if issues:
        raise ConfigError(filename, issues)
    return LoadedConfig(config, environ, lines, source)


def _read_yaml(source: bytes, filename: str) -> tuple[yaml.Node | None, Any]:
    """Compose the node graph, check it (duplicate keys, aliases), then build Python values."""
    loader = yaml.SafeLoader(source.decode("utf-8"))
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        problems = check_nodes(node)
        if problems:
            raise ConfigError(filename, [ConfigIssue(format_path(p.path), p.message, p.line) for p in problems])
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of the deepest part of ``path`` that the file has."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _collect_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = path + (key_node.value,)
                lines.setdefault(child, key_node.start_mark.line + 1)
                _collect_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, path + (index,), lines)


def _interpolate(value: Any, path: Path_, environ: dict[str, str], issues: list[ConfigIssue],
                 lines: dict[Path_, int]) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ and (environ[name] != "" or default is None):
                return environ[name]
            if default is not None:
                return default
            issues.append(ConfigIssue(format_path(path), f"environment variable {name} is not set",
                                      line_of(lines, path)))
            return ""

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), environ, issues, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), environ, issues, lines) for i, v in enumerate(value)]
    return value


def _issue_from_pydantic(err: Any, lines: dict[Path_, int]) -> ConfigIssue:
    loc = tuple(part for part in err["loc"] if not _is_union_tag(part))
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "literal_error":
        message = message.replace("Input should be", "must be one of")
    return ConfigIssue(format_path(loc), message, line_of(lines, loc))


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the union member's name ("str", "list[str]", "AliasSpec", a provider class) to the location
    return isinstance(part, str) and (part in {"str", "AliasSpec"} or part in PROVIDER_TAGS or part in GUARD_TAGS
                                      or part in SINK_TAGS or part.startswith(("list[", "function-")))
