"""Backfill: run every scheduled window in a date range, skipping what the ledger shows done.

Windows come from the pipeline's cron schedule (croniter, in its timezone); fire times that
resolve to the same window run once. Windows the ledger shows fully transformed are skipped
unless ``force``. Windows may run in parallel when the warehouse allows concurrent windows
(Snowflake) and no source's strategy needs its windows in order (SCD2 history); windows of
one source then queue on its bronze table lock (held from load through silver, see
:mod:`xoelt.runtime`) while their extract and stage run at once, so the result is the
serial one. On SIGINT/SIGTERM no new window starts and the running ones stop at once (see
:mod:`xoelt.interrupts`: statements interrupted, rolled back, recorded as ``interrupted``).
No failure is lost:
every window ends with a status, whatever went wrong in it.

The whole backfill is one process with one warehouse connection (at most one per worker on
Snowflake, pooled), one round of migrations and one object store client: the
:class:`~xoelt.runtime.SharedConnections` owned here lend them to every window's run (and
to the ledger check for done windows), and take the connection back cleaned after a
failed window (rolled back; reopened if it stopped answering). The pipeline is loaded and
its gold models parsed once for all the windows' plans. Each window is still its own run:
its run id, ledger rows, locks, alerts and metrics.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from xoelt import interrupts, ledger
from xoelt.core import GOLD, RunReport, execute
from xoelt.errors import InputError
from xoelt.pipelines import load_pipeline, resolve
from xoelt.plan import RunPlan, build_plan, pipeline_gold
from xoelt.runtime import Runtime, SharedConnections
from xoelt.schedule import fire_times
from xoelt.settings import Settings
from xoelt.stages import BRONZE_STAGE, stages_of
from xoelt.targets import resolve_target


@dataclass
class WindowOutcome:
    plan: RunPlan
    status: str = "pending"  # done | skipped | failed | interrupted | not_run
    rows: int = 0
    error: str = ""
    report: RunReport | None = None  # what the window's run did (None: it did not finish)
    seconds: float = 0.0  # the window's wall time, as its run took it


@dataclass
class BackfillResult:
    """One outcome per window, in order; exit 1 if any failed, 130 if interrupted."""

    outcomes: list[WindowOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def interrupted(self) -> bool:
        return interrupts.requested() is not None

    @property
    def exit_code(self) -> int:
        signum = interrupts.requested()
        return 128 + signum if signum is not None else 1 if self.failed else 0


def plan_windows(
    ref: str, first: date, last: date, target: str | None, settings: Settings | None = None
) -> list[RunPlan]:
    """One RunPlan per distinct window whose fire time falls on ``first``..``last``."""
    settings = settings or Settings.from_env()
    pipeline = load_pipeline(resolve(ref, settings.pipelines_root))
    target_name, bound = resolve_target(target, settings)
    dag = pipeline.dag
    gold = pipeline_gold(pipeline, settings.sql_root)  # the same for every window
    plans: dict[tuple[str, str], RunPlan] = {}
    for fired in fire_times(dag.schedule, dag.time_window.timezone, first, last):
        plan = build_plan(pipeline, target_name, bound, fired, settings.sql_root, gold)
        key = (plan.window.start.isoformat(), plan.window.end.isoformat())
        plans.setdefault(key, plan)
    return list(plans.values())


def required_stages(plan: RunPlan) -> set[tuple[str, str]]:
    """Every (source, stage) ledger row a complete run of the window leaves, gold included."""
    required = {(sp.name, stage) for sp in plan.sources for stage in stages_of(sp)}
    if plan.gold:
        required.add((GOLD, GOLD))
    return required


def done_windows(
    plans: list[RunPlan], settings: Settings, session: SharedConnections | None = None
) -> set[str]:
    """Window starts (ISO) whose latest run succeeded at every stage, gold included
    (read on ``session``'s connection if given)."""
    if not plans:
        return set()
    done = set()
    with Runtime(plans[0], settings, session=session) as rt:
        for plan in plans:
            start = plan.window.start.isoformat()
            if ledger.window_complete(
                rt.warehouse, plan.database, plan.name, start, required_stages(plan)
            ):
                done.add(start)
    return done


def run_windows(
    outcomes: list[WindowOutcome], run_one: Callable[[WindowOutcome], None], workers: int
) -> None:
    """``run_one`` for every outcome, ``workers`` at a time; an exception that escapes it is
    re-raised here (after the other windows finish), never dropped with its future."""
    if workers == 1:
        for outcome in outcomes:
            run_one(outcome)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
        futures = [pool.submit(run_one, o) for o in outcomes]
        for future in futures:
            while True:
                try:
                    future.result()
                    break
                except interrupts.Interrupted:
                    continue  # workers stop at their next stage boundary: wait for them


def backfill(
    plans: list[RunPlan],
    *,
    force: bool = False,
    workers: int = 1,
    keep_going: bool = False,
    on_window: Callable[[WindowOutcome], None] | None = None,
    settings: Settings | None = None,
) -> BackfillResult:
    """Run each window's plan (all four stages); one outcome per window, in order."""
    settings = settings or Settings.from_env()
    if workers < 1:
        raise InputError("--workers must be at least 1")
    result = BackfillResult([WindowOutcome(p) for p in plans])
    if not plans:
        return result
    first = plans[0]
    ordered = any(sp.ordered_backfill for sp in first.sources)
    if workers > 1 and (ordered or not first.target.warehouse.capabilities.concurrent_windows):
        workers = 1
    with SharedConnections(first) as session:
        _backfill(result, session, settings, force, workers, keep_going, on_window)
    for outcome in result.outcomes:
        if outcome.status == "pending":
            outcome.status = "not_run"
    return result


def _backfill(
    result: BackfillResult,
    session: SharedConnections,
    settings: Settings,
    force: bool,
    workers: int,
    keep_going: bool,
    on_window: Callable[[WindowOutcome], None] | None,
) -> None:
    """The body of :func:`backfill`: every window on ``session``'s connections."""
    plans = [o.plan for o in result.outcomes]
    skip = set() if force else done_windows(plans, settings, session)
    failed = threading.Event()

    def run_one(outcome: WindowOutcome) -> None:
        if outcome.plan.window.start.isoformat() in skip:
            outcome.status = "skipped"
        elif interrupts.requested() is not None or (failed.is_set() and not keep_going):
            outcome.status = "not_run"
        else:
            t0 = time.perf_counter()
            try:
                report = execute(outcome.plan, settings=settings, session=session)
                outcome.status, outcome.report = "done", report
                outcome.rows = sum(s.rows.get(BRONZE_STAGE, 0) for s in report.sources)
            except interrupts.Interrupted as exc:  # recorded in the ledger by execute
                outcome.status, outcome.error = "interrupted", str(exc)
            except Exception as exc:  # whatever it was, this window failed and says why
                outcome.status, outcome.error = "failed", str(exc) or type(exc).__name__
                failed.set()
            finally:
                outcome.seconds = round(time.perf_counter() - t0, 3)
        if on_window:
            on_window(outcome)

    # A signal that reaches the main thread between windows ends the loop; every window
    # left is then not_run.
    with contextlib.suppress(interrupts.Interrupted):
        run_windows(result.outcomes, run_one, workers)


@dataclass(frozen=True)
class Slice:
    """Slice ``index`` of ``count``: the windows a pod of an Indexed Job runs (``--slice i/N``).

    Window ``k`` of the ordered window list belongs to slice ``k % count`` (round-robin), so
    every slice gets old and recent windows alike: data volume tends to grow over a long
    range, and contiguous chunks would leave the last pod with the heaviest days. The list is
    the one :func:`plan_windows` gives from the pipeline and the dates alone; the slice is
    taken before the ledger is read, so which pod owns a window never depends on what is done.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Slice:
        """``"i/N"`` (0 <= i < N); anything else is an :class:`InputError` naming ``--slice``."""
        left, sep, right = text.partition("/")
        try:
            index, count = int(left), int(right)
        except ValueError:
            index, count = -1, -1
        if not sep or count < 1 or not 0 <= index < count:
            raise InputError(
                f"--slice {text!r} is not INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4)"
            )
        return cls(index, count)

    def take(self, plans: list[RunPlan]) -> list[RunPlan]:
        """This slice's windows, in window order."""
        return plans[self.index :: self.count]


def ordered_sources(plans: list[RunPlan]) -> list[str]:
    """Sources whose windows must load in window order (SCD2 history): they forbid slicing."""
    return [sp.name for sp in plans[0].sources if sp.ordered_backfill] if plans else []


def slice_windows(plans: list[RunPlan], part: Slice) -> list[RunPlan]:
    """The windows of ``part``; an :class:`InputError` if ``plans`` must stay in one slice."""
    ordered = ordered_sources(plans)
    if part.count > 1 and ordered:
        raise InputError(
            f"--slice {part.index}/{part.count}: {plans[0].name} has historical source(s) "
            f"{', '.join(ordered)} whose windows must load in order; run it as one slice (0/1)"
        )
    return part.take(plans)
