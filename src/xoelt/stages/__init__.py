"""The four stages, in order, as one registry: what each is called, shows and needs.

Each stage is a module ``xoelt.stages.<name>`` with ``run(rt, sp, log) -> StageResult``; it
is imported when the stage first runs, so ``--help`` and ``plan`` never load the stages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xoelt.findings import Finding

if TYPE_CHECKING:
    from xoelt.plan import SourcePlan
    from xoelt.runtime import Runtime


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
