"""Settings from the environment: every ``XOELT_*`` variable is read here, and only here.

A front end (the CLI, a test) reads them once with :meth:`Settings.from_env` and hands the
object down; nothing below it looks at ``os.environ`` for its own configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where things are: state, targets, pipelines and SQL (see the README's Environment table)."""

    home: Path = Path(".xoelt")
    target: str | None = None
    targets_file: Path = Path("targets.yaml")
    pipelines_root: Path = Path("pipelines")
    sql_root: Path = Path("sql")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the ``XOELT_*`` variables give (defaults relative to the working dir)."""
        source = os.environ if env is None else env
        return cls(
            home=Path(source.get("XOELT_HOME") or ".xoelt"),
            target=source.get("XOELT_TARGET") or None,
            targets_file=Path(source.get("XOELT_TARGETS") or "targets.yaml"),
            pipelines_root=Path(source.get("XOELT_PIPELINES") or "pipelines"),
            sql_root=Path(source.get("XOELT_SQL") or "sql"),
        )
