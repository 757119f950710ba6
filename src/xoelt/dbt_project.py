"""The plan of a dbt transform (``transform: {engine: dbt}``): which project, selection,
profile and vars; read from the pipeline without running or importing dbt.

``project_dir`` and ``profiles_dir`` are resolved under the SQL root (``sql/``, or
``$XOELT_SQL``) unless absolute, as gold SQL is, so a dbt project can live beside it at
``sql/dbt/<project>/``. :mod:`xoelt.dbt_engine` runs the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xoelt.config.yamlpos import line_for, load_yaml_with_lines
from xoelt.errors import ConfigError

if TYPE_CHECKING:
    from xoelt.config.models import Pipeline
    from xoelt.timewindow import TimeWindow

WINDOW_VARS = (
    "xoelt_window_start",
    "xoelt_window_end",
    "xoelt_window_timezone",
    "xoelt_run_date",
    "xoelt_run_id",
)
"""The vars every dbt build gets: the window's ISO instants ``[start, end)`` and its zone, the
run date (``--date``), and the run id. They override a pipeline ``vars:`` of the same name."""


@dataclass(frozen=True)
class DbtPlan:
    """What a dbt transform will run: the project, the selection, the profile and the vars
    the pipeline adds (the window's come at run time, :meth:`vars_for`)."""

    project_dir: Path
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    profiles_dir: Path | None = None
    target: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    reads: tuple[str, ...] = ()  # other databases the project reads (attached read-only)

    def vars_for(self, window: TimeWindow, run_at: date | datetime | None, run_id: str) -> dict:
        """The ``--vars`` of one run: the pipeline's, then the window's on top."""
        run_date = run_at.date() if isinstance(run_at, datetime) else run_at
        return {
            **self.vars,
            "xoelt_window_start": window.start.isoformat(),
            "xoelt_window_end": window.end.isoformat(),
            "xoelt_window_timezone": window.timezone,
            "xoelt_run_date": run_date.isoformat() if run_date else None,
            "xoelt_run_id": run_id,
        }

    def as_dict(self) -> dict[str, Any]:
        """The plan's JSON form (``xoelt plan --format json``, key ``transform``)."""
        return {
            "engine": "dbt",
            "project_dir": str(self.project_dir),
            "select": list(self.select),
            "exclude": list(self.exclude),
            "profiles_dir": str(self.profiles_dir) if self.profiles_dir else None,
            "target": self.target,
            "vars": sorted({*self.vars, *WINDOW_VARS}),
            "reads": list(self.reads),
        }


def dbt_plan(pipeline: Pipeline, sql_root: Path) -> DbtPlan | None:
    """The pipeline's dbt transform (None for xoelt's own gold). A ``project_dir`` without
    ``dbt_project.yml`` (or a ``profiles_dir`` without ``profiles.yml``) is a ConfigError
    naming the pipeline file, line and key. Reads no more than those two files' presence."""
    transform = pipeline.transform
    if transform.engine != "dbt" or transform.project_dir is None:
        return None
    project = _under(sql_root, transform.project_dir)
    if not (project / "dbt_project.yml").is_file():
        raise _config_error(pipeline, "project_dir", f"no dbt_project.yml in {project}")
    profiles = _under(sql_root, transform.profiles_dir) if transform.profiles_dir else None
    if profiles is not None and not (profiles / "profiles.yml").is_file():
        raise _config_error(pipeline, "profiles_dir", f"no profiles.yml in {profiles}")
    return DbtPlan(
        project,
        tuple(transform.select),
        tuple(transform.exclude),
        profiles,
        transform.target,
        dict(transform.vars),
        tuple(transform.reads),
    )


def _under(root: Path, given: str) -> Path:
    path = Path(given).expanduser()
    return (path if path.is_absolute() else root / path).absolute()


def _config_error(pipeline: Pipeline, key: str, message: str) -> ConfigError:
    line = None
    if pipeline.path is not None:
        _, lines = load_yaml_with_lines(pipeline.path)
        line = line_for(lines, ("transform", key))
    file = str(pipeline.path) if pipeline.path else None
    return ConfigError(message, file=file, line=line, key=f"transform.{key}")
