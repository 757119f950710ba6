"""Run data tests, keep their results in ``XOELT.TEST_RESULTS``, hand on what did not pass.

A :class:`Suite` is the tests of one table (a source's silver table, or a gold model). Each
test gives one :class:`Outcome`: ``pass``, or on failure ``warn`` / ``fail`` by its severity.
A test that cannot run (a missing table or column, a SQL error) fails the same way, saying
why. Every outcome is a row of the results table; every one that is not a pass is a
:class:`~xoelt.findings.Finding` of kind ``data_test``, and a ``fail`` makes
:meth:`DataTestReport.raise_for_errors` raise :class:`~xoelt.errors.DataTestFailed`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from xoelt.config.datatests import (
    AcceptedValues,
    DataTest,
    Expression,
    Freshness,
    NotNull,
    Relationships,
    RowCount,
    Unique,
    Volume,
)
from xoelt.datatests import sql
from xoelt.datatests.sql import Subject
from xoelt.errors import DataTestFailed, WarehouseError
from xoelt.findings import Finding
from xoelt.warehouse.base import TableRef, Warehouse, execute, literal

if TYPE_CHECKING:
    from xoelt.plan import RunPlan, SourcePlan
    from xoelt.runtime import Runtime
    from xoelt.timewindow import TimeWindow

Status = Literal["pass", "warn", "fail"]
GOLD = "gold"


@dataclass(frozen=True)
class Suite:
    """The tests of one table; ``current_rows`` is this window's transform row count, when
    the caller has it (else a ``volume`` test reads it from the run ledger)."""

    subject: Subject
    tests: tuple[DataTest, ...]
    current_rows: int | None = None


@dataclass(frozen=True)
class Outcome:
    """One test's result. ``failing_rows`` is None for table-level kinds (row_count,
    volume, freshness) and for a test that could not run."""

    source: str
    test_name: str
    kind: str
    table: TableRef
    severity: str
    status: Status
    failing_rows: int | None
    examples: list[Any]
    message: str

    def finding(self) -> Finding:
        """This outcome as a ``data_test`` finding (for one that did not pass)."""
        return Finding(
            "data_test",
            f"data test {self.test_name} on {self.table}: {self.message}",
            "warn" if self.status == "warn" else "error",
            count=self.failing_rows,
            data={
                "test": self.test_name,
                "table": str(self.table),
                "kind": self.kind,
                "examples": self.examples,
            },
        )


@dataclass
class DataTestReport:
    """Every outcome of a set of suites, in the order they ran."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(o.finding() for o in self.outcomes if o.status != "pass")

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "fail"]

    def raise_for_errors(self, findings: Sequence[Finding] = ()) -> None:
        """DataTestFailed naming the first failed ``error`` test, if any; it carries
        ``findings`` (a stage's others) and these tests' findings."""
        if not self.failed:
            return
        first, more = self.failed[0], len(self.failed) - 1
        also = f" (and {more} more failed data test{'s' if more > 1 else ''})" if more else ""
        raise DataTestFailed(
            f"data test {first.test_name} failed on {first.table}: {first.message}{also}",
            findings=[*findings, *self.findings],
        )


def silver_suite(sp: SourcePlan, window: TimeWindow, current_rows: int | None = None) -> Suite:
    """The tests of a source's silver table: the rows its load strategy says are this window's."""
    scope = sp.strategy.test_scope(sp.silver_job(window))
    subject = Subject(sp.name, sp.silver_table, scope, tuple(sp.silver.primary_key))
    return Suite(subject, tuple(sp.silver.tests), current_rows)


def gold_suites(plan: RunPlan) -> list[Suite]:
    """The tests of each gold model the plan materialises (whole tables), in model order."""
    return [
        Suite(Subject(GOLD, model.table, None, model.key), model.tests)
        for model in plan.gold
        if model.tests
    ]


def run_suites(rt: Runtime, suites: Sequence[Suite], log: Any) -> DataTestReport:
    """Run every test of ``suites``, record the outcomes in the results table and log them."""
    plan, wh = rt.plan, rt.warehouse
    report = DataTestReport()
    for suite in suites:
        outcomes = [_run_one(wh, plan, suite, test, name) for name, test in _named(suite)]
        for outcome in outcomes:
            # a pass is in the results table (and in --debug); what did not pass is logged
            level = {"pass": log.debug, "warn": log.warning, "fail": log.error}[outcome.status]
            level(
                "data test",
                test=outcome.test_name,
                table=str(outcome.table),
                status=outcome.status,
                failing_rows=outcome.failing_rows,
                detail=outcome.message,
            )
        log.info(
            "data tests",
            table=str(suite.subject.table),
            passed=sum(o.status == "pass" for o in outcomes),
            warned=sum(o.status == "warn" for o in outcomes),
            failed=sum(o.status == "fail" for o in outcomes),
        )
        report.outcomes.extend(outcomes)
    record(wh, plan, rt.run_id, report.outcomes)
    return report


def _named(suite: Suite) -> list[tuple[str, DataTest]]:
    """Each test with its name: its own, or ``<kind>_<SCHEMA>_<TABLE>[_<COLUMNS>]``; a
    repeated name gets ``_2``, ``_3``…"""
    table = suite.subject.table
    seen: dict[str, int] = {}
    out = []
    for test in suite.tests:
        base = test.name or "_".join([test.kind, table.schema, table.name, *test.columns_used])
        seen[base] = seen.get(base, 0) + 1
        out.append((base if seen[base] == 1 else f"{base}_{seen[base]}", test))
    return out


def _run_one(wh: Warehouse, plan: RunPlan, suite: Suite, test: DataTest, name: str) -> Outcome:
    subject = suite.subject

    def outcome(ok: bool, failing: int | None, examples: list[Any], message: str) -> Outcome:
        status: Status = "pass" if ok else "warn" if test.severity == "warn" else "fail"
        table = subject.table
        return Outcome(
            subject.source,
            name,
            test.kind,
            table,
            test.severity,
            status,
            failing,
            examples,
            message,
        )

    problem = _missing(wh, subject, test)
    if problem:
        return outcome(False, None, [], f"cannot run: {problem}")
    try:
        return outcome(*_measure(wh, plan, suite, test))
    except WarehouseError as exc:
        return outcome(False, None, [], f"cannot run: {exc.message}")


def _missing(wh: Warehouse, subject: Subject, test: DataTest) -> str | None:
    """Why the test cannot run: its table or a column it names is missing."""
    columns = wh.table_columns(subject.table)
    if columns is None:
        return f"table {subject.table} does not exist"
    shows_key = isinstance(test, NotNull | AcceptedValues | Relationships | Expression)
    wanted = [*test.columns_used, *(subject.key if shows_key else ())]
    missing = [c for c in dict.fromkeys(wanted) if c not in columns]
    if missing:
        return f"{subject.table} has no column {', '.join(missing)}"
    if isinstance(test, Relationships):
        parent = sql.resolve_table(test.to, subject.table)
        have = wh.table_columns(parent)
        if have is None:
            return f"table {parent} (relationships to) does not exist"
        if test.field not in have:
            return f"{parent} has no column {test.field}"
    return None


Measured = tuple[bool, int | None, list[Any], str]


def _measure(wh: Warehouse, plan: RunPlan, suite: Suite, test: DataTest) -> Measured:
    subject = suite.subject
    check = sql.row_check(test, subject)
    if check is not None:
        failing = int(execute(wh, check.count)[0][0] or 0)
        examples: list[Any] = []
        if failing and check.examples:
            examples = [_example(check.example_columns, r) for r in execute(wh, check.examples)]
        if not failing:
            return True, 0, [], "no failing rows"
        return False, failing, examples, f"{failing} row(s) {_what(test)}"
    if isinstance(test, RowCount):
        rows = int(execute(wh, sql.count_sql(subject))[0][0])
        low = test.min is not None and rows < test.min
        high = test.max is not None and rows > test.max
        bounds = []
        if test.min is not None:
            bounds.append(f"at least {test.min}")
        if test.max is not None:
            bounds.append(f"at most {test.max}")
        return not (low or high), None, [], f"{rows} row(s); expected {' and '.join(bounds)}"
    if isinstance(test, Freshness):
        newest = execute(wh, sql.newest_sql(subject, test.column))[0][0]
        return _fresh(newest, test, plan.window.end)
    if isinstance(test, Volume):
        return _volume(wh, plan, suite, test)
    raise AssertionError(f"no measure for data test kind {test.kind}")  # the union is closed


def _what(test: DataTest) -> str:
    """How a failing row of a row-level test fails, for the message."""
    if isinstance(test, NotNull):
        return f"with NULL {test.column}"
    if isinstance(test, Unique):
        return f"share a {', '.join(test.columns)} with another row"
    if isinstance(test, AcceptedValues):
        return f"with a {test.column} not in {', '.join(map(str, test.values))}"
    if isinstance(test, Relationships):
        return f"with a {test.column} not found in {test.to}.{test.field}"
    if isinstance(test, Expression):
        return f"where {test.expression} is not true"
    return "fail"


def _fresh(newest: Any, test: Freshness, end: datetime) -> Measured:
    if newest is None:
        return False, None, [], f"no {test.column} value to be fresh"
    if isinstance(newest, date) and not isinstance(newest, datetime):
        newest = datetime(newest.year, newest.month, newest.day, tzinfo=UTC)
    if not isinstance(newest, datetime):
        return (
            False,
            None,
            [],
            f"{test.column} is not a timestamp (type it in silver.columns: TIMESTAMP_TZ)",
        )
    if newest.tzinfo is None:  # TIMESTAMP_NTZ: read as UTC
        newest = newest.replace(tzinfo=UTC)
    age = end - newest
    limit = timedelta(seconds=test.max_age.seconds)
    ok = age <= limit
    return (
        ok,
        None,
        [],
        (
            f"newest {test.column} {newest.isoformat()} is {_duration(age)} before the window end "
            f"{end.isoformat()} (at most {_duration(limit)})"
        ),
    )


def _volume(wh: Warehouse, plan: RunPlan, suite: Suite, test: Volume) -> Measured:
    source, start = suite.subject.source, plan.window.start.isoformat()
    current = suite.current_rows
    if current is None:
        found = execute(wh, sql.ledger_window_sql(plan.database, plan.name, source, start))
        if not found:
            return False, None, [], "no successful transform of this window in the run ledger"
        current = int(found[0][0])
    history: dict[Any, int] = {}
    for window_start, rows in execute(
        wh, sql.ledger_rows_sql(plan.database, plan.name, source, start)
    ):
        if window_start not in history and len(history) < test.windows:
            history[window_start] = int(rows)
    if len(history) < test.min_history:
        return (
            True,
            None,
            [],
            (
                f"{current} row(s); not enough history to compare ({len(history)} of "
                f"{test.min_history} earlier windows)"
            ),
        )
    median = statistics.median(history.values())
    percent = (current / median * 100) if median else (0.0 if current == 0 else float("inf"))
    ok = percent >= test.min_percent and (test.max_percent is None or percent <= test.max_percent)
    upper = f"-{test.max_percent:g}" if test.max_percent is not None else "+"
    return (
        ok,
        None,
        [],
        (
            f"{current} row(s) is {percent:.0f}% of the median {median:g} of the last "
            f"{len(history)} windows (allowed {test.min_percent:g}{upper}%)"
        ),
    )


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}h{rest // 60:02d}m"


def _example(columns: Sequence[str], row: Sequence[Any]) -> Any:
    """A failing row's key: its value for a one-column key, else ``{column: value}``."""
    values = [_jsonable(v) for v in row]
    return values[0] if len(columns) == 1 else dict(zip(columns, values, strict=True))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def record(wh: Warehouse, plan: RunPlan, run_id: str, outcomes: Sequence[Outcome]) -> None:
    """Append one results row per outcome (one INSERT)."""
    if not outcomes:
        return
    now = f"{literal(datetime.now(UTC).isoformat())}::TIMESTAMP_TZ"
    start = f"{literal(plan.window.start.isoformat())}::TIMESTAMP_TZ"
    end = f"{literal(plan.window.end.isoformat())}::TIMESTAMP_TZ"
    rows = []
    for o in outcomes:
        values = [
            literal(run_id),
            literal(plan.name),
            literal(o.source),
            start,
            end,
            literal(o.test_name),
            literal(o.kind),
            literal(str(o.table)),
            literal(o.severity),
            literal(o.status),
            "NULL" if o.failing_rows is None else str(int(o.failing_rows)),
            literal(json.dumps(o.examples[: sql.EXAMPLES], default=str)),
            literal(o.message[:2000]),
            now,
        ]
        rows.append(f"({', '.join(values)})")
    columns = ", ".join(f'"{c}"' for c in sql.RESULT_COLUMNS)
    execute(
        wh, f"INSERT INTO {sql.results_table(plan.database)} ({columns}) VALUES {', '.join(rows)}"
    )
