"""``${VAR}`` references: resolved from the environment (and an optional ``.env`` file).

Secrets stay references (:class:`xoelt.config.types.SecretRef`) until the moment they are
used; this module only reads the environment and fills plain ``${VAR}`` values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def environment(dotenv: Path | None = None) -> dict[str, str]:
    """The process environment over the ``.env`` file (the real environment wins)."""
    env = read_dotenv(dotenv or Path.cwd() / ".env")
    env.update(os.environ)
    return env


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Replace every ``${VAR}`` in ``value``; an unset variable is an error naming it."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"environment variable {name} is not set")
        return env[name]

    return REFERENCE.sub(repl, value)
