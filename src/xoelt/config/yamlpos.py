"""YAML loading that remembers where every key and value came from.

PyYAML's composer gives each node a start mark; we walk the node tree once and build plain
Python data plus a map from key path (``("sources", "x", "load_strategy")``) to line number,
so validation errors can point at ``file:line``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from xoelt.errors import ConfigError

Loc = tuple[str | int, ...]

# A pipeline or targets file is a few KB. These bounds refuse hostile or broken input (an
# alias bomb, a 10 MB file, 20,000 nested brackets) in milliseconds instead of minutes.
MAX_BYTES = 1 << 20
MAX_NODES = 20_000  # values after alias expansion
MAX_DEPTH = 40
# Free text may span lines; every other value is a name, path, key or expression, where a
# control character is never meant and breaks keys, SQL literals and log lines later.
MULTILINE_KEYS = frozenset({"description", "expression"})  # a data test's SQL
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return (data, {key path: 1-based line}). Raises ConfigError."""
    display = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"file is {size:,} bytes; the limit is {MAX_BYTES:,}", file=display)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=display) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc.__class__.__name__}", file=display) from None
    try:
        _check_depth(text, display)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"YAML syntax error: {problem}", file=display, line=line) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=display) from None
    if node is None:
        raise ConfigError("file is empty", file=display)
    lines: dict[Loc, int] = {}
    data = _Converter(display, lines).convert(node, (), ())
    return data, lines


def _check_depth(text: str, display: str) -> None:
    """Refuse deep nesting from the token stream, before the (recursive, slow) composer."""
    opens = (
        yaml.BlockSequenceStartToken,
        yaml.BlockMappingStartToken,
        yaml.FlowSequenceStartToken,
        yaml.FlowMappingStartToken,
    )
    closes = (yaml.BlockEndToken, yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, opens):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"nested more than {MAX_DEPTH} levels deep",
                    file=display,
                    line=token.start_mark.line + 1,
                )
        elif isinstance(token, closes):
            depth -= 1


class _Converter:
    """Node tree → plain data, bounded in size and depth, aliases expanded at most once each
    per path (a recursive alias is an error, not a RecursionError)."""

    def __init__(self, display: str, lines: dict[Loc, int]) -> None:
        self.display, self.lines, self.nodes = display, lines, 0

    def fail(self, message: str, node: yaml.Node, loc: Loc) -> ConfigError:
        key = ".".join(str(p) for p in loc) or None
        return ConfigError(message, file=self.display, line=node.start_mark.line + 1, key=key)

    def convert(self, node: yaml.Node, loc: Loc, parents: tuple[int, ...]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES:,} values (aliases expanded)", node, loc)
        if len(parents) > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep", node, loc)
        if id(node) in parents:
            raise self.fail("an alias refers to the value that contains it", node, loc)
        self.lines.setdefault(loc, node.start_mark.line + 1)
        inner = (*parents, id(node))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc, inner)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*loc, i), inner) for i, item in enumerate(node.value)]
        value = self.scalar(node, loc)
        if isinstance(value, str):
            pattern = _CONTROL if loc and loc[-1] in MULTILINE_KEYS else _CONTROL_OR_NEWLINE
            if pattern.search(value):
                raise self.fail(f"control character in value {value[:40]!r}", node, loc)
        return value

    def scalar(self, node: yaml.Node, loc: Loc) -> Any:
        if node.tag == "tag:yaml.org,2002:merge":
            raise self.fail("merge keys (<<) are not supported; write the keys out", node, loc)
        try:
            return yaml.SafeLoader(" ").construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise self.fail(f"invalid value: {problem}", node, loc) from None

    def mapping(self, node: yaml.MappingNode, loc: Loc, parents: tuple[int, ...]) -> Any:
        display, lines = self.display, self.lines
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail("mapping keys must be strings", key_node, loc)
            key = self.scalar(key_node, loc)  # scalar keys only
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
            if _CONTROL_OR_NEWLINE.search(key):
                raise self.fail(f"control character in key {key[:40]!r}", key_node, loc)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = self.convert(value_node, (*loc, key), parents)
        return out


def line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc`` or of its nearest ancestor that has one."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
