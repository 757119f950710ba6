"""Targets: *where* a pipeline runs. ``local`` (built in) is a directory plus DuckDB.

Other targets are named in ``targets.yaml`` (or ``$XOELT_TARGETS``) and chosen with
``--target`` or ``$XOELT_TARGET``. Credentials in that file are ``${VAR}`` references.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from xoelt.config.models import StrictModel
from xoelt.errors import ConfigError, InputError


class LocalTarget(StrictModel):
    """The embedded default: objects in ``<home>/objects``, DuckDB files in ``<home>/warehouse``."""

    type: Literal["local"] = "local"
    home: str | None = None

    @property
    def home_dir(self) -> Path:
        return Path(self.home or os.environ.get("XOELT_HOME") or ".xoelt")

    @property
    def warehouse_kind(self) -> str:
        return "duckdb"


# One member today; becomes a union discriminated on ``type`` when more target kinds land.
Target = LocalTarget
_ADAPTER: TypeAdapter[LocalTarget] = TypeAdapter(Target)


def targets_file() -> Path:
    return Path(os.environ.get("XOELT_TARGETS", "targets.yaml"))


def resolve_target(name: str | None) -> tuple[str, LocalTarget]:
    """The named target (flag, then ``$XOELT_TARGET``, then ``local``)."""
    chosen = name or os.environ.get("XOELT_TARGET") or "local"
    defined: dict[str, object] = {}
    path = targets_file()
    if path.is_file():
        from xoelt.config.yamlpos import line_for, load_yaml_with_lines

        data, lines = load_yaml_with_lines(path)
        if not isinstance(data, dict):
            raise ConfigError("targets file must map names to targets", file=str(path), line=1)
        defined = data
        if chosen in defined:
            try:
                from xoelt.config.env import environment

                target = _ADAPTER.validate_python(defined[chosen], context={"env": environment()})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = (chosen, *err["loc"])
                raise ConfigError(
                    err["msg"].removeprefix("Value error, "),
                    file=str(path),
                    line=line_for(lines, loc),
                    key=".".join(str(p) for p in loc),
                ) from None
            return chosen, target
    if chosen == "local":
        return chosen, LocalTarget()
    valid = ", ".join(sorted({"local", *defined}))
    raise InputError(f"unknown target {chosen!r}; valid: {valid}")
