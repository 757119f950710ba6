"""Backfill: run every scheduled window in a date range, skipping what the ledger shows done.

Windows come from the pipeline's cron schedule (croniter, in its timezone); fire times that
resolve to the same window run once. Windows the ledger shows fully transformed are skipped
unless ``force``. Windows may run in parallel when the target allows it (Snowflake) and no
source is ``historical`` (SCD2 history must be built in window order). On SIGINT/SIGTERM no new
window starts; the ones running finish (every stage is atomic, so a second Ctrl-C that kills
one mid-way still leaves nothing half-written).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from xoelt.config.loader import load_pipeline, resolve
from xoelt.config.targets import resolve_target
from xoelt.errors import InputError, RunError
from xoelt.plan import RunPlan, build_plan
from xoelt.schedule import fire_times


@dataclass
class WindowOutcome:
    plan: RunPlan
    status: str = "pending"  # done | skipped | failed | not_run
    rows: int = 0
    error: str = ""


def plan_windows(ref: str, first: date, last: date, target: str | None) -> list[RunPlan]:
    """One RunPlan per distinct window whose fire time falls on ``first``..``last``."""
    pipeline = load_pipeline(resolve(ref))
    target_name, target_cfg = resolve_target(target)
    dag = pipeline.dag
    plans: dict[tuple[str, str], RunPlan] = {}
    for fired in fire_times(dag.schedule, dag.time_window.timezone, first, last):
        plan = build_plan(pipeline, target_name, target_cfg, fired)
        key = (plan.window.start.isoformat(), plan.window.end.isoformat())
        plans.setdefault(key, plan)
    return list(plans.values())


def done_windows(plans: list[RunPlan]) -> set[str]:
    """Window starts (ISO) whose every source's latest ``transform`` in the ledger succeeded."""
    from xoelt import ledger
    from xoelt.runtime import Runtime

    if not plans:
        return set()
    done = set()
    with Runtime(plans[0]) as rt:
        for plan in plans:
            start = plan.window.start.isoformat()
            if all(
                ledger.last_success(
                    rt.warehouse, plan.database, plan.name, sp.name, "transform", start
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


def backfill(
    plans: list[RunPlan],
    *,
    force: bool = False,
    workers: int = 1,
    keep_going: bool = False,
    on_window: Callable[[WindowOutcome], None] | None = None,
) -> list[WindowOutcome]:
    """Run each window's plan (all four stages); return one outcome per window, in order."""
    from xoelt.core import execute

    if workers < 1:
        raise InputError("--workers must be at least 1")
    outcomes = [WindowOutcome(p) for p in plans]
    if not plans:
        return outcomes
    ordered = any(sp.load_strategy == "historical" for sp in plans[0].sources)
    if workers > 1 and (ordered or not plans[0].target.parallel_windows):
        workers = 1
    skip = set() if force else done_windows(plans)
    flag = _StopFlag()
    failed = threading.Event()

    def run_one(outcome: WindowOutcome) -> WindowOutcome:
        if outcome.plan.window.start.isoformat() in skip:
            outcome.status = "skipped"
        elif flag.event.is_set() or (failed.is_set() and not keep_going):
            outcome.status = "not_run"
        else:
            try:
                report = execute(outcome.plan)
                outcome.status = "done"
                outcome.rows = sum(s.rows.get("load", 0) for s in report.sources)
            except RunError as exc:
                outcome.status, outcome.error = "failed", str(exc)
                failed.set()
        if on_window:
            on_window(outcome)
        return outcome

    with _graceful(flag):
        if workers == 1:
            for outcome in outcomes:
                run_one(outcome)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
                pending: set[Future[WindowOutcome]] = {pool.submit(run_one, o) for o in outcomes}
                while pending:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
    return outcomes
