"""Leaf types of every config model: the strict base model, identifiers, names, secrets.

Everything that ends up in SQL is an :data:`Identifier` (validated against
``^[A-Za-z_][A-Za-z0-9_$]*$`` and upper-cased: Snowflake folds unquoted names to upper case;
xoelt always quotes, so it folds first). Credentials are :data:`Secret` references
(``${GLADLY_API_TOKEN}``), resolved only when used, so ``plan`` and ``validate`` need none and
a secret value never sits in a config object that could be printed.
"""

from __future__ import annotations

import codecs
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    model_validator,
)

from xoelt.config.env import REFERENCE, environment, interpolate
from xoelt.errors import ConfigError
from xoelt.redact import register

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")


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
        register(value)
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


def holds_secret(annotation: Any) -> bool:
    """Whether a field's type is (or contains, as in ``Secret | None``) a :class:`SecretRef`."""
    if annotation is SecretRef:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return holds_secret(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(holds_secret(arg) for arg in typing.get_args(annotation))
    return False


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors; ``${VAR}`` resolved from the env.

    Interpolation happens only when validation is given ``context={"env": ...}`` (the loader
    does this) and never for :data:`Secret` fields, which stay references.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _interpolate_env(cls, data: Any, info: ValidationInfo) -> Any:
        env = (info.context or {}).get("env")
        if env is None or not isinstance(data, dict):
            return data
        secret_keys = cls._secret_keys()
        out = dict(data)
        for key, value in data.items():
            if isinstance(value, str) and "${" in value and key not in secret_keys:
                try:
                    out[key] = interpolate(value, env)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return out

    @classmethod
    def _secret_keys(cls) -> frozenset[str]:
        return frozenset(
            key
            for name, field in cls.model_fields.items()
            if holds_secret(field.annotation)
            for key in (name, field.alias)
            if key
        )


MAX_IDENTIFIER_LENGTH = 255  # Snowflake's limit for an identifier


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"{value!r} is not a valid identifier (letters, digits, _ and $; not starting with a digit)"
        )
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(
            f"identifier {value[:20]}… is {len(value)} characters; the limit is {MAX_IDENTIFIER_LENGTH}"
        )
    return value.upper()


def _name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, _ and -)")
    return value


def _bucket(value: str) -> str:
    if not BUCKET.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
    return value


def _base_url(value: str) -> str:
    if not URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL (http:// only for a local server)")
    return value.rstrip("/")


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value


def _source_name(value: str) -> str:
    _identifier(value)
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
"""A SQL identifier from config: validated and upper-cased (always quoted in SQL)."""
SourceName = Annotated[str, AfterValidator(_source_name)]
"""A source's key under ``sources:``: identifier characters, case kept."""
Name = Annotated[str, AfterValidator(_name)]
"""A domain, pipeline or model name: letters, digits, ``_`` and ``-``."""
Bucket = Annotated[str, AfterValidator(_bucket)]
"""An S3 bucket name."""
BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""An API root such as ``https://api.sproutsocial.com`` (no trailing slash)."""
Encoding = Annotated[str, AfterValidator(_encoding)]
"""A text encoding Python knows (``utf-8-sig``, ``latin-1``…)."""
