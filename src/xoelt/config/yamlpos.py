"""YAML loading that remembers where every key and value came from.

PyYAML's composer gives each node a start mark; we walk the node tree once and build plain
Python data plus a map from key path (``("sources", "x", "load_strategy")``) to line number,
so validation errors can point at ``file:line``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xoelt.errors import ConfigError

Loc = tuple[str | int, ...]


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return (data, {key path: 1-based line}). Raises ConfigError."""
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=display) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc.__class__.__name__}", file=display) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"YAML syntax error: {problem}", file=display, line=line) from None
    if node is None:
        raise ConfigError("file is empty", file=display)
    lines: dict[Loc, int] = {}
    data = _convert(node, (), lines, display)
    return data, lines


def _convert(node: yaml.Node, loc: Loc, lines: dict[Loc, int], display: str) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # scalar keys only
            if not isinstance(key, str | int):
                raise ConfigError(
                    "mapping keys must be strings", file=display, line=key_node.start_mark.line + 1
                )
            key = str(key)
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r}",
                    file=display,
                    line=key_node.start_mark.line + 1,
                    key=".".join(str(p) for p in (*loc, key)),
                )
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*loc, key), lines, display)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*loc, i), lines, display) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


def line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc`` or of its nearest ancestor that has one."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
