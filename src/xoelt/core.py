"""The core API under every front end: load a pipeline, build its plan, execute stages.

The CLI, the tests and the demo all go through these functions, so ``plan`` and ``run``
share one RunPlan and can never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from xoelt.config.loader import load_pipeline, resolve
from xoelt.config.targets import resolve_target
from xoelt.errors import (
    ExtractError,
    LoadError,
    RunError,
    StageError,
    TransformError,
    XoeltError,
)
from xoelt.logging import get_logger
from xoelt.plan import RunPlan, build_plan
from xoelt.stages import STAGES
from xoelt.timewindow import align_to_schedule, parse_run_at

STAGE_ERRORS: dict[str, type[RunError]] = {
    "extract": ExtractError,
    "stage": StageError,
    "load": LoadError,
    "transform": TransformError,
}


def make_plan(
    ref: str, when: str | None, target: str | None = None, now: datetime | None = None
) -> RunPlan:
    """Resolve pipeline ``ref`` and ``--date`` into a RunPlan.

    Without ``--date`` the run is the schedule's latest fire time at or before now, so a
    CronJob that starts late (even past local midnight) still loads the window it was
    scheduled for, and a repeat of it loads the same one.
    """
    pipeline = load_pipeline(resolve(ref))
    target_name, target_cfg = resolve_target(target)
    zone = pipeline.dag.time_window.zone
    if when:
        run_at: date | datetime = parse_run_at(when, zone)
    else:
        moment = (now or datetime.now(UTC)).astimezone(zone)
        run_at = align_to_schedule(moment, pipeline.dag.schedule)
    return build_plan(pipeline, target_name, target_cfg, run_at)


@dataclass
class SourceReport:
    name: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunReport:
    run_id: str
    plan: RunPlan
    sources: list[SourceReport] = field(default_factory=list)
    gold: dict[str, int] = field(default_factory=dict)
    warehouse_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.plan.name,
            "window": self.plan.window.as_dict(),
            "sources": [
                {"name": s.name, "rows": s.rows, "seconds": s.seconds} for s in self.sources
            ],
            "gold": self.gold,
            "warehouse": self.warehouse_path,
        }


def execute(
    plan: RunPlan,
    stages: Sequence[str] = STAGES,
    source: str | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Run ``stages`` (in order) for the selected sources, then gold if transforming."""
    from xoelt.runtime import Runtime
    from xoelt.stages.extract import extract
    from xoelt.stages.load import load
    from xoelt.stages.stage import stage
    from xoelt.stages.transform import gold, silver

    steps: dict[str, Callable[..., dict[str, Any]]] = {
        "extract": extract,
        "stage": stage,
        "load": load,
        "transform": silver,
    }
    selected = plan.select(source)
    window = plan.window
    with Runtime(plan, run_id) as rt:
        report = RunReport(rt.run_id, plan)
        if {"load", "transform"} & set(stages):
            _ = rt.warehouse  # open (and migrate) up front so every stage is in the ledger
        for sp in selected:
            log = get_logger(
                pipeline=plan.name, source=sp.name, run_id=rt.run_id, window=window.label
            )
            item = SourceReport(sp.name)
            report.sources.append(item)
            with rt.lock(sp.name):
                for name in [s for s in STAGES if s in stages]:
                    started = datetime.now(UTC)
                    t0 = time.perf_counter()
                    try:
                        result = steps[name](rt, sp, log)
                    except Exception as exc:
                        # a store or driver error nobody mapped becomes this stage's error
                        error = (
                            exc
                            if isinstance(exc, XoeltError)
                            else STAGE_ERRORS[name](f"{type(exc).__name__}: {exc}")
                        )
                        if isinstance(error, RunError):
                            error.locate(source=sp.name, window=window.label)
                        _record(rt, sp.name, name, "failed", started, None, str(error), log)
                        if error is exc:
                            raise
                        raise error from exc
                    item.rows[name] = int(result.get("rows", 0))
                    item.seconds[name] = round(time.perf_counter() - t0, 3)
                    _record(rt, sp.name, name, "success", started, item.rows[name], "", log)
        if "transform" in stages and plan.gold:
            log = get_logger(
                pipeline=plan.name, source="gold", run_id=rt.run_id, window=window.label
            )
            try:
                report.gold = gold(rt, log)
            except RunError as exc:
                exc.locate(source="gold", window=window.label)
                raise
        if rt.warehouse_open:
            report.warehouse_path = str(rt.warehouse.path_of(plan.database))
        return report


def _record(
    rt: Any,
    source: str,
    stage: str,
    status: str,
    started: datetime,
    rows: int | None,
    message: str,
    log: Any,
) -> None:
    """Ledger row for a stage; extract/stage alone do not open the warehouse for it."""
    from xoelt import ledger

    if stage in ("extract", "stage") and not rt.warehouse_open:
        return
    try:
        ledger.record(
            rt.warehouse,
            rt.plan.database,
            run_id=rt.run_id,
            pipeline=rt.plan.name,
            source=source,
            stage=stage,
            window_start=rt.plan.window.start.isoformat(),
            window_end=rt.plan.window.end.isoformat(),
            status=status,
            started_at=started,
            rows=rows,
            message=message,
        )
    except XoeltError as exc:  # the ledger must never hide the run's own outcome
        log.warning("ledger write failed", error=str(exc))


def validate_all(paths: list[str]) -> tuple[list[str], list[str]]:
    """Validate pipeline files; return (ok paths, one line per problem)."""
    from pathlib import Path

    from xoelt.config.loader import PipelineInvalid, discover
    from xoelt.errors import ConfigError, InputError

    files = [Path(p) for p in paths] if paths else discover()
    expanded: list[Path] = []
    for f in files:
        expanded.extend(discover(f) if f.is_dir() else [f])
    ok: list[str] = []
    problems: list[str] = []
    for f in expanded:
        try:
            load_pipeline(f)
            ok.append(str(f))
        except PipelineInvalid as exc:
            problems.extend(str(p) for p in exc.problems)
        except (ConfigError, InputError) as exc:
            problems.append(str(exc))
    return ok, problems


@dataclass
class LayerCount:
    layer: str
    table: str
    rows: int | None


def status(plan: RunPlan) -> tuple[list[LayerCount], list[dict[str, Any]], str]:
    """Row counts of every table the pipeline owns, the latest run's ledger rows, the DuckDB file."""
    from pathlib import Path

    from xoelt.runtime import Runtime
    from xoelt.warehouse.base import literal, quote

    with Runtime(plan) as rt:
        wh = rt.warehouse
        counts: list[LayerCount] = []
        tables = [("bronze", sp.bronze_table) for sp in plan.sources]
        tables += [("silver", sp.silver_table) for sp in plan.sources]
        tables += [("gold", g.table) for g in plan.gold]
        for layer, table in tables:
            exists = wh.table_columns(table) is not None
            counts.append(LayerCount(layer, str(table), wh.count(table) if exists else None))
        ledger = f"{quote(plan.database)}.{quote('XOELT')}.{quote('RUN_LEDGER')}"
        name = literal(plan.name)
        rows = wh.execute(
            f'SELECT "RUN_ID", "SOURCE", "STAGE", "WINDOW_START", "STATUS", "ROWS", "FINISHED_AT" '
            f'FROM {ledger} WHERE "PIPELINE" = {name} AND "RUN_ID" = (SELECT "RUN_ID" FROM {ledger} '
            f'WHERE "PIPELINE" = {name} ORDER BY "FINISHED_AT" DESC LIMIT 1) ORDER BY "FINISHED_AT"'
        )
        keys = ("run_id", "source", "stage", "window_start", "status", "rows", "finished_at")
        zone = plan.pipeline.dag.time_window.zone
        runs = [dict(zip(keys, r, strict=True)) for r in rows]
        for run in runs:
            run["window_start"] = run["window_start"].astimezone(zone).isoformat()
            run["finished_at"] = run["finished_at"].isoformat(timespec="seconds")
        return counts, runs, str(Path(str(wh.path_of(plan.database))).resolve())
