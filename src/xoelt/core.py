"""The core API under every front end: load a pipeline, build its plan, execute stages.

The CLI, the tests and the demo all go through these functions, so ``plan`` and ``run``
share one RunPlan and can never disagree. Each returns a small result with an exit code.
This is also the one place that says *where* a failure happened: anything a stage raises
(lock and warehouse opening included) leaves as one :class:`~xoelt.errors.StageFailed`
naming stage, source and window, with the cause chained.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xoelt import interrupts, ledger, metrics
from xoelt.dbt_project import dbt_plan
from xoelt.errors import InputError, StageFailed, XoeltError
from xoelt.findings import Finding, as_details, from_details
from xoelt.gold import load_models
from xoelt.logging import get_logger
from xoelt.pipelines import PipelineInvalid, discover, load_pipeline, resolve
from xoelt.plan import RunPlan, SourcePlan, build_plan
from xoelt.progress import ProgressListener
from xoelt.runtime import Runtime, SharedConnections
from xoelt.settings import Settings
from xoelt.stages import BRONZE_STAGE, LAST_STAGE, STAGES, Stage, StageResult, stages_of
from xoelt.stages.transform import gold
from xoelt.targets import resolve_target
from xoelt.timewindow import align_to_schedule, parse_run_at
from xoelt.warehouse.base import TableRef, count_rows

if TYPE_CHECKING:
    from xoelt.datatests.runner import Outcome

_ORDER = list(STAGES)
HOLDS_BRONZE = frozenset(_ORDER[_ORDER.index(BRONZE_STAGE) : _ORDER.index(LAST_STAGE) + 1])
"""The stages during which a window holds its source's bronze table (load through silver)."""


def make_plan(
    ref: str,
    when: str | None,
    target: str | None = None,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> RunPlan:
    """Resolve pipeline ``ref`` and ``--date`` into a RunPlan.

    Without ``--date`` the run is the schedule's latest fire time at or before now, so a
    CronJob that starts late (even past local midnight) still loads the window it was
    scheduled for, and a repeat of it loads the same one.
    """
    settings = settings or Settings.from_env()
    pipeline = load_pipeline(resolve(ref, settings.pipelines_root))
    target_name, bound = resolve_target(target, settings)
    zone = pipeline.dag.time_window.zone
    if when is not None:  # an empty --date is an error, not "now"
        run_at: date | datetime = parse_run_at(when, zone)
    else:
        moment = (now or datetime.now(UTC)).astimezone(zone)
        run_at = align_to_schedule(moment, pipeline.dag.schedule)
    return build_plan(pipeline, target_name, bound, run_at, settings.sql_root)


@dataclass
class SourceReport:
    name: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class RunReport:
    """What a run did: rows and seconds per source and stage, gold rows (and seconds, and
    findings), where the data is. ``stages`` are the stages the run was asked for."""

    run_id: str
    plan: RunPlan
    sources: list[SourceReport] = field(default_factory=list)
    gold: dict[str, int] = field(default_factory=dict)
    warehouse_path: str | None = None
    exit_code: int = 0
    stages: tuple[str, ...] = tuple(STAGES)
    gold_seconds: float | None = None
    gold_findings: list[Finding] = field(default_factory=list)

    @property
    def pipeline(self) -> str:
        return self.plan.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.plan.name,
            "window": self.plan.window.as_dict(),
            "sources": [
                {
                    "name": s.name,
                    "rows": s.rows,
                    "seconds": s.seconds,
                    "findings": [f.as_dict() for f in s.findings],
                }
                for s in self.sources
            ],
            "gold": self.gold,
            "warehouse": self.warehouse_path,
        }


@contextmanager
def _failing_as(stage: str, source: str | None, window: str | None) -> Generator[None]:
    """Any failure inside becomes one StageFailed saying where (the cause chained); a
    failure while a signal asks to stop (the statement it interrupted) is the Interrupted."""
    where = " ".join(
        [
            stage,
            *([f"source={source}"] if source else []),
            *([f"window={window}"] if window else []),
        ]
    )
    try:
        interrupts.check()
        yield
    except interrupts.Interrupted as exc:
        exc.where = exc.where or where
        raise
    except StageFailed:
        raise
    except Exception as exc:
        if (signum := interrupts.requested()) is not None:
            raise interrupts.Interrupted(signum, where) from exc
        raise StageFailed(stage, exc, source=source, window=window) from exc


GOLD = "gold"
"""The ledger's source and stage names for a run's gold models (no source is a stage)."""


def execute(
    plan: RunPlan,
    stages: Sequence[str] = tuple(STAGES),
    source: str | None = None,
    run_id: str | None = None,
    settings: Settings | None = None,
    progress: ProgressListener | None = None,
    session: SharedConnections | None = None,
) -> RunReport:
    """Run ``stages`` (in order) for the selected sources, then gold if transforming.

    Every stage, and gold, leaves one ledger row: success, failed or interrupted. This is
    where a run's outcome is known, so its alerts go out here (when channels are configured)
    and its metrics are pushed here (when the target names an endpoint), success or
    failure, after the locks are released; a failing channel or push is only a warning.
    ``progress`` hears the extract stage's rows, bytes and pages as they come; ``session``
    lends the warehouse connection (a backfill's, kept across its windows).
    """
    settings = settings or Settings.from_env()
    wanted = [STAGES[name] for name in STAGES if name in stages]
    selected = plan.select(source)
    if source is not None:
        _derived_only(selected, wanted)
    # a derived source has no extract/stage/load: a run of only those leaves it out
    selected = [sp for sp in selected if any(s.name in stages_of(sp) for s in wanted)]
    report = RunReport(run_id or "", plan, stages=tuple(s.name for s in wanted))
    error: BaseException | None = None
    try:
        with Runtime(plan, settings, run_id, session=session) as rt:
            report.run_id = rt.run_id
            rt.progress = progress
            try:
                _execute(rt, report, selected, wanted)
            except StageFailed as exc:
                _announce(rt, report, exc)
                raise
            _announce(rt, report, None)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if plan.target.metrics is not None:
            log = get_logger(pipeline=plan.name, run_id=report.run_id, window=plan.window.label)
            metrics.publish(plan.target.metrics, report, error, log, last_stage=LAST_STAGE)
    return report


def _execute(
    rt: Runtime, report: RunReport, selected: Sequence[SourcePlan], wanted: Sequence[Stage]
) -> None:
    """The body of :func:`execute`: the stages, then gold, filling ``report`` as they go."""
    plan = rt.plan
    window = plan.window.label
    needing = [s for s in wanted if s.needs_warehouse]
    if needing:  # open (and migrate) up front so every stage is in the ledger
        with _failing_as(needing[0].name, ", ".join(sp.name for sp in selected), window):
            _ = rt.warehouse
    for family in _families(selected):
        with contextlib.ExitStack() as held:
            first = family[0]
            # Every source of the family holds its window's lock (taken up front, in run
            # order, so two runs never wait on each other's); from load through the last
            # silver the window holds the bronze table they share: no other window's load
            # in between (taken at the first of those stages it runs).
            for sp in family:
                with _failing_as(wanted[0].name, sp.name, window):
                    lock = rt.lock(sp.name)
                held.enter_context(lock)
            log = get_logger(pipeline=plan.name, source=first.name, run_id=rt.run_id, window=window)
            what = f"bronze {first.bronze_table}"
            bronze = _Once(held, partial(rt.table_lock, first.bronze_table, what, log))
            for sp in family:
                _run_source(rt, report, sp, wanted, bronze)
    if LAST_STAGE in report.stages and plan.dbt is not None:
        _dbt_gold(rt, report)
    if LAST_STAGE in report.stages and plan.gold:
        log = get_logger(pipeline=plan.name, source=GOLD, run_id=rt.run_id, window=window)

        def materialise() -> StageResult:
            # One window materialises gold at a time, so the last to run saw every silver.
            schema = plan.gold[0].table
            what = f"gold {schema.schema_sql}"
            with rt.table_lock(schema.with_name("_GOLD"), what, log):
                report.gold = gold(rt, log)
            from xoelt.datatests.runner import gold_suites, run_suites  # not needed by `plan`

            tests = run_suites(rt, gold_suites(plan), log)
            tests.raise_for_errors()
            return StageResult(sum(report.gold.values()), findings=tests.findings)

        _record_gold(rt, report, log, materialise)
    if rt.warehouse_open:
        report.warehouse_path = rt.warehouse.location(plan.database)


def _families(selected: Sequence[SourcePlan]) -> list[list[SourcePlan]]:
    """The selected sources (in run order) grouped by the bronze table they read: a real
    source and the sources derived from it, which follow it (:func:`xoelt.plan.run_order`)."""
    families: list[list[SourcePlan]] = []
    for sp in selected:
        if families and families[-1][0].bronze_table == sp.bronze_table:
            families[-1].append(sp)
        else:
            families.append([sp])
    return families


def _run_source(
    rt: Runtime, report: RunReport, sp: SourcePlan, wanted: Sequence[Stage], bronze: _Once
) -> None:
    """The wanted stages this source runs (a derived one: transform only), in order."""
    window = rt.plan.window.label
    log = get_logger(pipeline=rt.plan.name, source=sp.name, run_id=rt.run_id, window=window)
    item = SourceReport(sp.name)
    report.sources.append(item)
    for stage in wanted:
        if stage.name not in stages_of(sp):
            continue
        t0 = time.perf_counter()
        work = partial(_run_stage, rt, sp, stage, log, bronze)
        try:
            result = _recorded(rt, sp.name, stage.name, log, work)
        except StageFailed as exc:  # what the failing stage noticed is counted too
            item.findings.extend(exc.findings)
            raise
        finally:  # a failed stage's time is reported as well
            item.seconds[stage.name] = round(time.perf_counter() - t0, 3)
        item.rows[stage.name] = result.rows
        item.findings.extend(result.findings)


def _derived_only(selected: Sequence[SourcePlan], stages: Sequence[Stage]) -> None:
    """``--source`` naming a derived source for stages it does not run is bad input."""
    for sp in selected:
        if not any(s.name in stages_of(sp) for s in stages):
            names = "/".join(s.name for s in stages)
            raise InputError(
                f"source {sp.name} is derived from {sp.parent} (it reads {sp.parent}'s bronze "
                f"{sp.bronze_table}): it has no {names} stage; run that for --source "
                f"{sp.parent}, or `xoelt transform --source {sp.name}`"
            )


def _dbt_gold(rt: Runtime, report: RunReport) -> None:
    """Gold by ``dbt build`` (transform engine dbt): the same ledger row, lock and report
    fields as xoelt's own gold, the dbt nodes' results as its findings."""
    from xoelt import dbt_engine

    plan = rt.plan
    assert plan.dbt is not None
    dbt = plan.dbt
    log = get_logger(pipeline=plan.name, source=GOLD, run_id=rt.run_id, window=plan.window.label)
    sf = plan.pipeline.globals.snowflake

    def build() -> StageResult:
        gold_lock = TableRef(sf.database, sf.gold_schema, "_GOLD")
        with rt.table_lock(gold_lock, f"gold {gold_lock.schema_sql}", log):
            outcome = dbt_engine.run(rt, dbt, log)
        report.gold = outcome.models
        return StageResult(sum(outcome.models.values()), findings=outcome.findings)

    _record_gold(rt, report, log, build)


def _record_gold(
    rt: Runtime, report: RunReport, log: Any, build: Callable[[], StageResult]
) -> None:
    """Gold (by either engine) as the run's last ledger row: its findings and time go to
    ``report`` whether it succeeds or fails."""
    t0 = time.perf_counter()
    try:
        result = _recorded(rt, GOLD, GOLD, log, build, failing_as=LAST_STAGE)
        report.gold_findings.extend(result.findings)
    except StageFailed as exc:
        report.gold_findings.extend(exc.findings)
        raise
    finally:
        report.gold_seconds = round(time.perf_counter() - t0, 3)


def _announce(rt: Runtime, report: RunReport, error: StageFailed | None) -> None:
    """Alerts for the run's outcome (when the pipeline or target has channels). Nothing
    here may change the outcome: any failure is a warning."""
    from xoelt.config.alerts import effective_alerts

    plan = rt.plan
    if not effective_alerts(plan.pipeline.globals.alerts, plan.target.alerts).channels:
        return
    log = get_logger(pipeline=plan.name, run_id=rt.run_id, window=plan.window.label)

    def previous_failed() -> bool | None:
        if not rt.warehouse_open:
            return None
        return ledger.previous_run_failed(rt.warehouse, plan.database, plan.name, rt.run_id)

    try:
        from xoelt import alerts

        alerts.after_run(report, error, previous_failed, log)
    except Exception as exc:
        log.warning("alerts failed", error=str(exc)[:300])


class _Once:
    """Enter a context (a table lock) the first time it is asked for; keep it to the end."""

    def __init__(self, stack: contextlib.ExitStack, make: Callable[[], Any]) -> None:
        self.stack, self.make, self.entered = stack, make, False

    def __call__(self) -> None:
        if not self.entered:
            self.stack.enter_context(self.make())
            self.entered = True


def _run_stage(rt: Runtime, sp: Any, stage: Stage, log: Any, bronze: _Once) -> StageResult:
    if stage.name in HOLDS_BRONZE:
        bronze()
    return stage.run(rt, sp, log)


def _recorded(
    rt: Runtime,
    source: str,
    stage: str,
    log: Any,
    work: Callable[[], StageResult],
    failing_as: str | None = None,
) -> StageResult:
    """``work()`` as stage ``stage`` of ``source``, with its ledger row whatever happens."""
    started = datetime.now(UTC)
    window = rt.plan.window.label
    try:
        with _failing_as(failing_as or stage, source, window):
            rt.enter_stage(failing_as or stage, source)  # e.g. Snowflake's QUERY_TAG
            result = work()
        # A signal landing in this ledger write interrupts it: the row then says so instead.
        _record(rt, source, stage, "success", started, result.rows, "", log, result.findings)
    except StageFailed as exc:
        _record(rt, source, stage, "failed", started, None, str(exc), log, exc.findings)
        raise
    except interrupts.Interrupted as exc:
        exc.where = exc.where or f"{failing_as or stage} source={source} window={window}"
        _record(rt, source, stage, "interrupted", started, None, str(exc), log)
        raise
    return result


def _record(
    rt: Runtime,
    source: str,
    stage: str,
    status: str,
    started: datetime,
    rows: int | None,
    message: str,
    log: Any,
    findings: Sequence[Finding] = (),
) -> None:
    """Ledger row for a stage (with its findings); extract/stage alone do not open the
    warehouse for it (their findings are then in the ingest manifest)."""
    if not (stage == GOLD or STAGES[stage].needs_warehouse or rt.warehouse_open):
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
            details=as_details(findings),
        )
    except XoeltError as exc:  # the ledger must never hide the run's own outcome
        log.warning("ledger write failed", error=str(exc))


@dataclass
class ValidateResult:
    """Pipeline files that validated, and one line per problem; ``looked_in`` says where the
    files were searched for when none was named."""

    ok: list[str]
    problems: list[str]
    looked_in: str = ""

    @property
    def exit_code(self) -> int:
        return 2 if self.problems or not self.ok else 0


def validate_all(paths: list[str], settings: Settings | None = None) -> ValidateResult:
    """Validate pipeline files (default: every file under the pipelines root), and the gold
    models each one materialises with their sidecars (data tests)."""
    settings = settings or Settings.from_env()
    files = [Path(p) for p in paths] if paths else discover(settings.pipelines_root)
    expanded: list[Path] = []
    for f in files:
        expanded.extend(discover(f) if f.is_dir() else [f])
    result = ValidateResult([], [], "" if paths else settings.where("pipelines"))
    for f in expanded:
        try:
            pipeline = load_pipeline(f)
            sf = pipeline.globals.snowflake  # its gold models and their data-test sidecars
            only = pipeline.transform.gold_models
            if pipeline.transform.engine == "dbt":  # its dbt project (and profiles) exist
                dbt_plan(pipeline, settings.sql_root)
            else:
                load_models(
                    pipeline.dag.domain, sf.database, sf.gold_schema, only, settings.sql_root
                )
            result.ok.append(str(f))
        except PipelineInvalid as exc:
            result.problems.extend(str(p) for p in exc.problems)
        except InputError as exc:
            result.problems.append(str(exc))
    return result


@dataclass
class LayerCount:
    layer: str
    table: str
    rows: int | None


@dataclass
class StatusReport:
    """Rows per layer, the latest run's ledger rows, and where the warehouse is."""

    tables: list[LayerCount]
    runs: list[dict[str, Any]]
    warehouse: str
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables": [c.__dict__ for c in self.tables],
            "runs": self.runs,
            "warehouse": self.warehouse,
        }


def status(plan: RunPlan, settings: Settings | None = None) -> StatusReport:
    """Row counts of every table the pipeline owns and the latest run's ledger rows.

    Any failure is a "status failed" (opening the warehouse, counting, reading the ledger):
    never mistaken for the failure of a stage.
    """
    settings = settings or Settings.from_env()
    with Runtime(plan, settings) as rt, _failing_as("status", None, None):
        wh = rt.warehouse
        counts: list[LayerCount] = []
        tables = [("bronze", sp.bronze_table) for sp in plan.sources if not sp.derived]
        tables += [("silver", sp.silver_table) for sp in plan.sources if sp.has_silver]
        tables += [("gold", g.table) for g in plan.gold]
        for layer, table in tables:
            exists = wh.table_columns(table) is not None
            counts.append(LayerCount(layer, str(table), count_rows(wh, table) if exists else None))
        zone = plan.pipeline.dag.time_window.zone
        runs = ledger.latest_run(wh, plan.database, plan.name)
        for run in runs:
            run["window_start"] = run["window_start"].astimezone(zone).isoformat()
            run["finished_at"] = run["finished_at"].isoformat(timespec="seconds")
            run["findings"] = [f.as_dict() for f in from_details(run.pop("details"))]
        return StatusReport(counts, runs, wh.location(plan.database))


@dataclass
class DataTestRun:
    """What ``xoelt test`` did: every outcome, in order, and the run id they are filed under."""

    plan: RunPlan
    run_id: str
    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "fail"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.plan.name,
            "window": self.plan.window.as_dict(),
            "results": [
                {
                    "source": o.source,
                    "test": o.test_name,
                    "kind": o.kind,
                    "table": str(o.table),
                    "severity": o.severity,
                    "status": o.status,
                    "failing_rows": o.failing_rows,
                    "examples": o.examples,
                    "message": o.message,
                }
                for o in self.outcomes
            ],
        }


def data_tests(plan: RunPlan, settings: Settings | None = None) -> DataTestRun:
    """Run the pipeline's data tests (each source's silver, then the gold models) on what
    the warehouse holds for the plan's window, and record them in ``XOELT.TEST_RESULTS``.

    No ledger row is written: a test run is not a run of the window (backfill's "done"
    stays what the last real run left). A failed ``error`` test is exit code 1; a test
    that warns is reported and is not.
    """
    settings = settings or Settings.from_env()
    window = plan.window.label
    with Runtime(plan, settings) as rt, _failing_as("test", None, window):
        log = get_logger(pipeline=plan.name, source="test", run_id=rt.run_id, window=window)
        from xoelt.datatests.runner import gold_suites, run_suites, silver_suite

        suites = [
            silver_suite(sp, plan.window)
            for sp in plan.sources
            if sp.has_silver and sp.silver.tests
        ]
        report = run_suites(rt, [*suites, *gold_suites(plan)], log)
        return DataTestRun(plan, rt.run_id, report.outcomes)
