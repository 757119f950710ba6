"""What the report shows, as data: ledger rows and data-test results read from the warehouse,
summarised per pipeline, source and day.

Reading goes through the :class:`~xoelt.warehouse.base.Warehouse` protocol in Snowflake's
dialect, so the same queries run on DuckDB and Snowflake. The data-test results table
(``XOELT.TEST_RESULTS``) is optional: a database without it has "no data-test results
recorded" rather than an error.

A day is the local date (in the pipeline's timezone) on which a window starts. A cell of the
grid takes, for each window of that day, the latest run that touched it, and is the worst
status among that run's rows: ``failed`` over ``interrupted`` over ``success``; a day with no
row is ``not_run``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from xoelt.errors import WarehouseError
from xoelt.warehouse.base import TableRef, Warehouse, literal, quote

LEDGER_FIELDS = (
    "run_id",
    "pipeline",
    "source",
    "stage",
    "window_start",
    "window_end",
    "status",
    "rows",
    "message",
    "details",
    "started_at",
    "finished_at",
)
TEST_FIELDS = (
    "run_id",
    "pipeline",
    "source",
    "window_start",
    "window_end",
    "test_name",
    "test_kind",
    "table_name",
    "severity",
    "status",
    "failing_rows",
    "example_keys",
    "message",
    "tested_at",
)
STAGE_ORDER = ("extract", "stage", "load", "transform", "gold")
LAYERS = {"load": "bronze", "transform": "silver", "gold": "gold"}
"""The stage whose row count is a layer's: load fills bronze, transform silver."""
RANK = {"success": 0, "interrupted": 1, "failed": 2}
LATEST_FAILURES = 20
LATEST_TESTS = 100


def _select(fields: Sequence[str], table: str, pipelines: Iterable[str], since: datetime) -> str:
    names = ", ".join(literal(p) for p in sorted(set(pipelines)))
    cols = ", ".join(quote(f.upper()) for f in fields)
    return (
        f"SELECT {cols} FROM {table} WHERE {quote('PIPELINE')} IN ({names}) "
        f"AND {quote('WINDOW_START')} >= {literal(since.isoformat())}::TIMESTAMP_TZ"
    )


def read_ledger(
    wh: Warehouse, database: str, pipelines: Iterable[str], since: datetime
) -> list[dict[str, Any]]:
    """Ledger rows of ``pipelines`` whose window starts at or after ``since``, oldest first."""
    table = TableRef(database, "XOELT", "RUN_LEDGER")
    sql = _select(LEDGER_FIELDS, table.sql, pipelines, since)
    try:
        rows = wh.query(f"{sql} ORDER BY {quote('FINISHED_AT')}").rows
    except WarehouseError as exc:
        raise WarehouseError(f"reading the run ledger {table} failed: {exc.message}") from exc
    out = []
    for r in rows:
        row = dict(zip(LEDGER_FIELDS, r, strict=True))
        row["rows"] = None if row["rows"] is None else int(row["rows"])
        row["details"] = _json(row["details"], {})
        out.append(row)
    return out


def read_tests(
    wh: Warehouse, database: str, pipelines: Iterable[str], since: datetime
) -> list[dict[str, Any]] | None:
    """Data-test results of ``pipelines`` since ``since``, newest first; None when the
    database has no ``XOELT.TEST_RESULTS`` table (no data tests ever recorded there)."""
    table = TableRef(database, "XOELT", "TEST_RESULTS")
    if wh.table_columns(table) is None:
        return None
    sql = _select(TEST_FIELDS, table.sql, pipelines, since)
    try:
        rows = wh.query(f"{sql} ORDER BY {quote('TESTED_AT')} DESC").rows
    except WarehouseError as exc:
        raise WarehouseError(f"reading data-test results {table} failed: {exc.message}") from exc
    out = []
    for r in rows:
        row = dict(zip(TEST_FIELDS, r, strict=True))
        row["failing_rows"] = None if row["failing_rows"] is None else int(row["failing_rows"])
        keys = _json(row["example_keys"], [])
        row["example_keys"] = keys if isinstance(keys, list) else [keys]
        out.append(row)
    return out


def _json(raw: Any, default: Any) -> Any:
    try:
        return json.loads(raw) if raw else default
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Span:
    """The days the report covers, ``first``..``last`` inclusive."""

    first: date
    last: date

    @classmethod
    def ending(cls, last: date, days: int) -> Span:
        return cls(last - timedelta(days=days - 1), last)

    @property
    def days(self) -> list[str]:
        n = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=i)).isoformat() for i in range(n)]

    @property
    def since(self) -> datetime:
        """An instant before the first day starts in any timezone (they are all within a
        day of UTC); rows before the first local day are dropped when summarised."""
        return datetime.combine(self.first - timedelta(days=1), datetime.min.time(), UTC)


def _iso(value: Any, zone: tzinfo | None = None) -> str | None:
    if not isinstance(value, datetime):
        return None if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone or UTC).isoformat(timespec="seconds")


def _day(value: Any, zone: tzinfo) -> str | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).date().isoformat()


def _seconds(row: Mapping[str, Any]) -> float | None:
    start, end = row["started_at"], row["finished_at"]
    if not (isinstance(start, datetime) and isinstance(end, datetime)):
        return None
    return max((end - start).total_seconds(), 0.0)


def summarise(
    ledger_rows: Sequence[Mapping[str, Any]],
    tests: Sequence[Mapping[str, Any]] | None,
    zones: Mapping[str, tzinfo],
    span: Span,
    generated_at: datetime,
) -> dict[str, Any]:
    """The report's data (what the page's JSON blob holds): grid, charts, failures, tests
    (``None`` when none are recorded: no results table, or an empty one)."""
    tests = tests or None
    days = span.days
    wanted = set(days)
    # the latest run of each (pipeline, source, window): its rows decide the window
    latest: dict[tuple[str, str, Any], str] = {}
    for row in ledger_rows:  # oldest first: later runs overwrite
        latest[(row["pipeline"], row["source"], row["window_start"])] = row["run_id"]
    current = [
        (row, _day(row["window_start"], zones.get(row["pipeline"], UTC)))
        for row in ledger_rows
        if latest[(row["pipeline"], row["source"], row["window_start"])] == row["run_id"]
    ]
    current = [(row, day) for row, day in current if day in wanted]
    runs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for row in ledger_rows:
        day = _day(row["window_start"], zones.get(row["pipeline"], UTC))
        if day in wanted:
            runs[(row["pipeline"], row["source"], str(day))].add(row["run_id"])

    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    rows_by: dict[tuple[str, str, str], int] = defaultdict(int)
    seconds_by: dict[tuple[str, str], float] = defaultdict(float)
    for row, day in current:
        day = str(day)
        key = (row["pipeline"], row["source"])
        cell = cells[key].setdefault(day, {"status": "success", "stages": {}, "message": ""})
        status = row["status"] if row["status"] in RANK else "failed"
        if RANK[status] > RANK[cell["status"]]:
            cell["status"] = status
        if status != "success" and not cell["message"]:
            cell["message"] = f"{row['stage']}: {row['message']}"
        cell["stages"][row["stage"]] = status
        cell["runs"] = len(runs[(row["pipeline"], row["source"], day)])
        if status == "success" and row["stage"] in LAYERS and row["rows"] is not None:
            rows_by[(row["pipeline"], LAYERS[row["stage"]], day)] += row["rows"]
        if (spent := _seconds(row)) is not None:
            seconds_by[(row["stage"], day)] += spent

    pipelines = sorted({p for p, _ in cells} | set(zones))
    grid = [
        {"pipeline": p, "source": s, "cells": [cells[(p, s)].get(d) for d in days]}
        for p, s in sorted(cells, key=lambda k: (k[0], k[1] == "gold", k[1]))
    ]
    many = len(pipelines) > 1
    layer_sets = []
    for p in pipelines:
        for layer in ("bronze", "silver", "gold"):
            values = [rows_by.get((p, layer, d)) for d in days]
            if any(v is not None for v in values):
                label = f"{p} {layer}" if many else layer
                layer_sets.append({"label": label, "data": values})
    stages = [s for s in STAGE_ORDER if any((s, d) in seconds_by for d in days)]
    stages += sorted({s for s, _ in seconds_by} - set(stages))
    duration_sets = [
        {"label": s, "data": [_round(seconds_by.get((s, d))) for d in days]} for s in stages
    ]
    failures = [
        {
            "pipeline": r["pipeline"],
            "source": r["source"],
            "stage": r["stage"],
            "status": r["status"],
            "window_start": _iso(r["window_start"], zones.get(r["pipeline"])),
            "window_end": _iso(r["window_end"], zones.get(r["pipeline"])),
            "finished_at": _iso(r["finished_at"]),
            "message": r["message"] or "",
            "findings": (r["details"] or {}).get("findings", []),
        }
        for r in reversed(ledger_rows)
        if r["status"] != "success"
    ][:LATEST_FAILURES]
    return {
        "generated_at": _iso(generated_at),
        "pipelines": pipelines,
        "days": days,
        "grid": grid,
        "rows": {"labels": days, "datasets": layer_sets},
        "durations": {"labels": days, "datasets": duration_sets},
        "failures": failures,
        "tests": None if tests is None else [_test(t, zones) for t in tests[:LATEST_TESTS]],
        "test_totals": None if tests is None else _totals(tests),
        "ledger_rows": len(ledger_rows),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _test(t: Mapping[str, Any], zones: Mapping[str, tzinfo]) -> dict[str, Any]:
    zone = zones.get(t["pipeline"])
    return {
        **{k: t[k] for k in TEST_FIELDS if k not in ("window_start", "window_end", "tested_at")},
        "window_start": _iso(t["window_start"], zone),
        "window_end": _iso(t["window_end"], zone),
        "tested_at": _iso(t["tested_at"]),
    }


def _totals(tests: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    totals = {"pass": 0, "warn": 0, "fail": 0}
    for t in tests:
        totals[str(t["status"])] = totals.get(str(t["status"]), 0) + 1
    return totals
