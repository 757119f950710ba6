"""``xoelt report``: the run-history page of one pipeline or all, from the warehouse.

One core function, :func:`write_report`, under the CLI command: it resolves the pipelines,
opens each database their ledgers live in once (through the target's warehouse, as
``status`` does, migrations included), reads the ledger and data-test results of the
covered days, and writes one self-contained HTML file atomically (a temporary file renamed
into place, so a reader never sees half a page).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

from xoelt.errors import InputError, StorageError
from xoelt.pipelines import discover
from xoelt.plan import RunPlan
from xoelt.report.history import Span, read_ledger, read_tests, summarise
from xoelt.report.render import render
from xoelt.runtime import Runtime
from xoelt.settings import Settings


@dataclass
class ReportResult:
    """Where the page was written and what went into it."""

    path: Path
    pipelines: list[str]
    span: Span
    ledger_rows: int
    test_results: int | None  # None: no data-test results table in any database read
    exit_code: int = 0
    databases: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "pipelines": self.pipelines,
            "first_day": self.span.first.isoformat(),
            "last_day": self.span.last.isoformat(),
            "ledger_rows": self.ledger_rows,
            "test_results": self.test_results,
            "databases": self.databases,
        }


def _plans(ref: str | None, target: str | None, settings: Settings) -> list[RunPlan]:
    from xoelt.core import make_plan

    if ref is not None:
        return [make_plan(ref, None, target, settings=settings)]
    files = discover(settings.pipelines_root)
    if not files:
        raise InputError(f"no pipeline files found under {settings.where('pipelines')}")
    return [make_plan(str(f), None, target, settings=settings) for f in files]


def write_report(
    ref: str | None,
    *,
    days: int = 30,
    out: Path = Path("report.html"),
    target: str | None = None,
    until: date | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> ReportResult:
    """Write the run-history report of pipeline ``ref`` (default: every pipeline) covering
    the ``days`` days ending ``until`` (default today, UTC) to ``out``."""
    if days < 1:
        raise InputError(f"--days must be at least 1, not {days}")
    settings = settings or Settings.from_env()
    moment = now or datetime.now(UTC)
    span = Span.ending(until or moment.date(), days)
    plans = _plans(ref, target, settings)
    zones: dict[str, tzinfo] = {p.name: p.pipeline.dag.time_window.zone for p in plans}
    by_database: dict[str, list[RunPlan]] = defaultdict(list)
    for p in plans:
        by_database[p.database].append(p)
    ledger_rows: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] | None = None
    for database, group in sorted(by_database.items()):
        names = [p.name for p in group]
        with Runtime(group[0], settings) as rt:
            ledger_rows += read_ledger(rt.warehouse, database, names, span.since)
            found = read_tests(rt.warehouse, database, names, span.since)
        if found:  # no table (a ledger from before V002) or no rows: nothing recorded
            tests = (tests or []) + found
    ledger_rows.sort(key=lambda r: (r["finished_at"] is None, r["finished_at"] or moment))
    if tests is not None:
        tests.sort(key=lambda t: str(t["tested_at"] or ""), reverse=True)
    data = summarise(ledger_rows, tests, zones, span, moment)
    title = f"xoelt run history: {ref}" if ref else "xoelt run history: all pipelines"
    path = _write(out, render(data, title))
    return ReportResult(
        path,
        sorted(zones),
        span,
        len(ledger_rows),
        None if tests is None else len(tests),
        databases=sorted(by_database),
    )


def _write(out: Path, text: str) -> Path:
    """``text`` into ``out`` via a temporary file in the same folder, renamed into place."""
    target = out.absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise StorageError(f"cannot write the report to {target}: {exc.strerror}") from exc
    return target
