"""The four stages, in order, as one registry: what each is called, shows and needs.

Each stage is a module ``xoelt.stages.<name>`` with ``run(rt, sp, log) -> StageResult``; it
is imported when the stage first runs, so ``--help`` and ``plan`` never load the stages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from xoelt.findings import Finding

if TYPE_CHECKING:
    from xoelt.plan import SourcePlan
    from xoelt.runtime import Runtime


T = TypeVar("T")
R = TypeVar("R")
PART_WORKERS = 4
"""Object-store requests in flight at once for a window's parts (uploads, copies, peeks):
each is I/O the store does, so a few threads overlap their round trips."""


def in_parallel(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work`` over ``items`` on a small thread pool, results in order; the first error is
    raised (after the calls already running finish). One item runs in this thread."""
    todo = list(items)
    if len(todo) <= 1:
        return [work(item) for item in todo]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(PART_WORKERS, len(todo))) as pool:
        futures = [pool.submit(work, item) for item in todo]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


@dataclass(frozen=True)
class StageResult:
    """What a stage did for one source: rows out (and columns, where it knows them), and
    what it noticed about the data (kept in the stage's ledger row)."""

    rows: int
    columns: int | None = None
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Stage:
    name: str
    label: str  # the column a run report shows its rows under
    help: str
    needs_warehouse: bool

    def run(self, rt: Runtime, sp: SourcePlan, log: Any) -> StageResult:
        module = importlib.import_module(f"{__name__}.{self.name}")
        runner: Callable[[Runtime, SourcePlan, Any], StageResult] = module.run
        return runner(rt, sp, log)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("extract", "extracted", "Extract: source → CSV in the ingest bucket.", False),
        Stage(
            "stage",
            "staged",
            "Stage: copy ingest → stage bucket, read the header (8 KB peek).",
            False,
        ),
        Stage(
            "load",
            "bronze",
            "Load: replace bronze with the staged file (atomic, reconciled).",
            True,
        ),
        Stage(
            "transform",
            "silver",
            "Transform: bronze → silver by load strategy, then gold models.",
            True,
        ),
    )
}
BRONZE_STAGE = "load"
"""The stage that fills bronze (its rows are a window's "rows loaded")."""
LAST_STAGE = "transform"
"""The stage after which a window is done (and gold runs)."""


def stages_of(sp: SourcePlan) -> tuple[str, ...]:
    """The stages source ``sp`` runs, and leaves ledger rows for: a derived source (it reads
    its parent's bronze) only transforms; every other one runs all four."""
    return (LAST_STAGE,) if sp.derived else tuple(STAGES)
