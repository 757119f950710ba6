"""Backfill: run every scheduled window in a date range, skipping what the ledger shows done.

Windows come from the pipeline's cron schedule (croniter, in its timezone); fire times that
resolve to the same window run once. Windows the ledger shows fully transformed are skipped
unless ``force``. Windows may run in parallel when the warehouse allows concurrent windows
(Snowflake) and no source's strategy needs its windows in order (SCD2 history); windows of
one source then queue on its bronze table lock (held from load through silver, see
:mod:`xoelt.runtime`) while their extract and stage run at once, so the result is the
serial one. On
SIGINT/SIGTERM no new window starts; the ones running finish (every stage is atomic, so a
second Ctrl-C that kills one mid-way still leaves nothing half-written). No failure is lost:
every window ends with a status, whatever went wrong in it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from xoelt import ledger
from xoelt.core import execute
from xoelt.errors import InputError
from xoelt.pipelines import load_pipeline, resolve
from xoelt.plan import RunPlan, build_plan
from xoelt.runtime import Runtime
from xoelt.schedule import fire_times
from xoelt.settings import Settings
from xoelt.stages import BRONZE_STAGE, LAST_STAGE
from xoelt.targets import resolve_target


@dataclass
class WindowOutcome:
    plan: RunPlan
    status: str = "pending"  # done | skipped | failed | not_run
    rows: int = 0
    error: str = ""


@dataclass
class BackfillResult:
    """One outcome per window, in order; exit 1 if any failed, 130 if interrupted."""

    outcomes: list[WindowOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[WindowOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def interrupted(self) -> bool:
        return any(o.status == "not_run" for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 130 if self.interrupted else 0


def plan_windows(
    ref: str, first: date, last: date, target: str | None, settings: Settings | None = None
) -> list[RunPlan]:
    """One RunPlan per distinct window whose fire time falls on ``first``..``last``."""
    settings = settings or Settings.from_env()
    pipeline = load_pipeline(resolve(ref, settings.pipelines_root))
    target_name, bound = resolve_target(target, settings)
    dag = pipeline.dag
    plans: dict[tuple[str, str], RunPlan] = {}
    for fired in fire_times(dag.schedule, dag.time_window.timezone, first, last):
        plan = build_plan(pipeline, target_name, bound, fired, settings.sql_root)
        key = (plan.window.start.isoformat(), plan.window.end.isoformat())
        plans.setdefault(key, plan)
    return list(plans.values())


def done_windows(plans: list[RunPlan], settings: Settings) -> set[str]:
    """Window starts (ISO) whose every source's latest last stage in the ledger succeeded."""
    if not plans:
        return set()
    done = set()
    with Runtime(plans[0], settings) as rt:
        for plan in plans:
            start = plan.window.start.isoformat()
            if all(
                ledger.last_success(
                    rt.warehouse, plan.database, plan.name, sp.name, LAST_STAGE, start
                )
                for sp in plan.sources
            ):
                done.add(start)
    return done


class _StopFlag:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signals = 0


@contextmanager
def _graceful(flag: _StopFlag) -> Generator[None]:
    """First SIGINT/SIGTERM: start no new window. A second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        flag.signals += 1
        flag.event.set()
        if flag.signals > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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
        future.result()


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
    ordered = any(sp.strategy.ordered_backfill for sp in first.sources)
    if workers > 1 and (ordered or not first.target.warehouse.capabilities.concurrent_windows):
        workers = 1
    skip = set() if force else done_windows(plans, settings)
    flag = _StopFlag()
    failed = threading.Event()

    def run_one(outcome: WindowOutcome) -> None:
        if outcome.plan.window.start.isoformat() in skip:
            outcome.status = "skipped"
        elif flag.event.is_set() or (failed.is_set() and not keep_going):
            outcome.status = "not_run"
        else:
            try:
                report = execute(outcome.plan, settings=settings)
                outcome.status = "done"
                outcome.rows = sum(s.rows.get(BRONZE_STAGE, 0) for s in report.sources)
            except Exception as exc:  # whatever it was, this window failed and says why
                outcome.status, outcome.error = "failed", str(exc) or type(exc).__name__
                failed.set()
        if on_window:
            on_window(outcome)

    with _graceful(flag):
        run_windows(result.outcomes, run_one, workers)
    return result
