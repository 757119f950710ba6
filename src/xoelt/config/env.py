"""``${VAR}`` references: resolved from the environment (and an optional ``.env`` file).

Secrets stay references (:class:`SecretRef`) until the moment they are used, so ``plan`` and
``validate`` need no credentials and a secret value never sits in a config object that could
be printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, SecretStr

from xoelt.errors import ConfigError

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


class SecretRef:
    """A secret named by reference (``${GLADLY_API_TOKEN}``); its value is read only on use."""

    __slots__ = ("key", "var")

    def __init__(self, var: str, key: str = "") -> None:
        self.var = var
        self.key = key

    @classmethod
    def parse(cls, text: str, key: str = "") -> SecretRef:
        match = REFERENCE.fullmatch(text.strip())
        if not match:
            raise ValueError("secrets must be ${VAR} references to the environment, not literals")
        return cls(match.group(1), key)

    def resolve(self, env: Mapping[str, str] | None = None) -> SecretStr:
        """The secret's value; ConfigError (naming the variable, never a value) if unset."""
        source = environment() if env is None else env
        value = source.get(self.var)
        if not value:
            where = f" (for {self.key})" if self.key else ""
            raise ConfigError(f"environment variable {self.var} is not set{where}")
        return SecretStr(value)

    def __repr__(self) -> str:
        return f"SecretRef(${{{self.var}}})"

    def __str__(self) -> str:
        return f"${{{self.var}}}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and other.var == self.var

    def __hash__(self) -> int:
        return hash(self.var)


def _to_secret_ref(value: object) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise ValueError("secrets must be ${VAR} references to the environment")
    return SecretRef.parse(value)


Secret = Annotated[SecretRef, PlainValidator(_to_secret_ref), PlainSerializer(str)]
"""A pydantic field type for credentials: only ``${VAR}`` references are accepted."""
