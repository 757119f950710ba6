"""Settings from the environment: every ``XOELT_*`` variable is read here, and only here.

A front end (the CLI, a test) reads them once with :meth:`Settings.from_env` and hands the
object down; nothing below it looks at ``os.environ`` for its own configuration.

Pipelines and SQL come from ``$XOELT_PIPELINES`` / ``$XOELT_SQL`` or, when those are unset,
``pipelines/`` and ``sql/`` in the working directory: nothing is read from where the package
is installed, so an installed wheel works in any project directory. :meth:`Settings.where`
says where a root is and why, for the "found nothing" messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_ROOTS = {"pipelines": "XOELT_PIPELINES", "sql": "XOELT_SQL"}


@dataclass(frozen=True)
class Settings:
    """Where things are: state, targets, pipelines and SQL (see the README's Environment table)."""

    home: Path = Path(".xoelt")
    target: str | None = None
    targets_file: Path = Path("targets.yaml")
    pipelines_root: Path = Path("pipelines")
    sql_root: Path = Path("sql")
    pipelines_from_env: bool = False
    sql_from_env: bool = False
    # Tests only: the length of a rate-limit "minute" (a budget of 10 a minute over 2 s).
    rate_limit_minute: float = 60.0

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
            pipelines_from_env=bool(source.get("XOELT_PIPELINES")),
            sql_from_env=bool(source.get("XOELT_SQL")),
            rate_limit_minute=_seconds(source, "XOELT_RATE_LIMIT_MINUTE_SECONDS", 60.0),
        )

    def where(self, root: Literal["pipelines", "sql"]) -> str:
        """``/abs/path (from $XOELT_PIPELINES)`` or ``/abs/path (the working directory's
        pipelines/; set XOELT_PIPELINES to look elsewhere)``."""
        var = _ROOTS[root]
        path = self.pipelines_root if root == "pipelines" else self.sql_root
        if self.pipelines_from_env if root == "pipelines" else self.sql_from_env:
            return f"{path.absolute()} (from ${var})"
        return f"{path.absolute()} (the working directory's {root}/; set {var} to look elsewhere)"


def _seconds(source: Mapping[str, str], var: str, default: float) -> float:
    """A positive number of seconds from ``var``; unset, empty or not a positive number gives
    ``default`` (the variable is a test hook, not a user setting that deserves an error)."""
    try:
        value = float(source.get(var) or default)
    except ValueError:
        return default
    return value if value > 0 else default
