"""Cast accounting: values of typed silver columns that do not convert are counted, not lost.

Silver types a column with ``TRY_CAST(col AS type)``, which turns a value that does not
convert into NULL. Before the silver script runs, the transform stage counts, for every
typed column (``silver.columns`` type other than VARCHAR), bronze's non-empty values and
those whose ``TRY_CAST`` is NULL, in one aggregate query over bronze (the same expression as
silver's, so the count is exactly what silver would turn into NULL on that engine). Against
the source's ``max_cast_failures`` (a count, or a fraction of the column's non-empty values;
default 0) per column: above it the transform fails (DataError naming the column, the count
and up to 3 offending values, before anything is written to silver); at or below it each
column with failures is a warning. The counts of every typed column go to the transform's
ledger row either way.

``VARIANT`` columns are not counted: any string becomes a VARIANT string, and Snowflake's
TRY_CAST does not take VARIANT as a target. Counting is over bronze's rows, so rows a keyed
strategy then drops as duplicates are counted too.

Engines: the SQL is Snowflake's; DuckDB runs it through sqlglot, whose translation of
``TRY_CAST`` keeps NULL-on-failure but not every conversion rule (see the README's "Schema
drift and cast failures": e.g. DuckDB's INTEGER is 32-bit where Snowflake's is NUMBER(38,0),
and Snowflake reads more date and timestamp spellings). fakesnow turns
``TRY_CAST(x AS TIMESTAMP_NTZ)`` into a strict cast, so there a bad value raises instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from xoelt.config.models import SilverConfig
from xoelt.errors import DataError
from xoelt.findings import Finding
from xoelt.warehouse.base import Relation, Warehouse, execute, quote

UNCOUNTED_TYPES = frozenset({"VARCHAR", "VARIANT"})
MAX_EXAMPLES = 3
EXAMPLE_CHARS = 40


@dataclass(frozen=True)
class CastCount:
    """One typed column in one window: its non-empty values and how many did not convert."""

    column: str
    type: str
    non_empty: int
    failed: int
    examples: tuple[str, ...] = ()


def typed_columns(silver: SilverConfig) -> list[tuple[str, str]]:
    """The columns whose values are converted (and so can fail to), in config order."""
    return [(c, t) for c, t in silver.columns.items() if t not in UNCOUNTED_TYPES]


def _fails(column: str, type_: str) -> str:
    ref = quote(column)
    return f"{ref} <> '' AND TRY_CAST({ref} AS {type_}) IS NULL"


def count_sql(table: Relation, columns: Sequence[tuple[str, str]]) -> str:
    """One aggregate over bronze: per column, its non-empty values, then the failed ones."""
    parts = []
    for column, type_ in columns:
        parts.append(f"COUNT_IF({quote(column)} <> '')")
        parts.append(f"COUNT_IF({_fails(column, type_)})")
    return f"SELECT {', '.join(parts)} FROM {table.sql}"


def examples_sql(table: Relation, column: str, type_: str) -> str:
    """The first distinct values of ``column`` (in file order) that do not convert."""
    ref = quote(column)
    return (
        f"SELECT {ref} FROM {table.sql} WHERE {_fails(column, type_)} GROUP BY {ref} "
        f"ORDER BY MIN({quote('_XO_FILE_ROW_NUMBER')}) LIMIT {MAX_EXAMPLES}"
    )


def count_failures(
    wh: Warehouse, table: Relation, columns: Sequence[tuple[str, str]]
) -> list[CastCount]:
    """Count each column's values that do not convert (with examples where some fail)."""
    if not columns:
        return []
    row = execute(wh, count_sql(table, columns))[0]
    out = []
    for i, (column, type_) in enumerate(columns):
        non_empty, failed = int(row[2 * i] or 0), int(row[2 * i + 1] or 0)
        examples: tuple[str, ...] = ()
        if failed:
            examples = tuple(str(r[0]) for r in execute(wh, examples_sql(table, column, type_)))
        out.append(CastCount(column, type_, non_empty, failed, examples))
    return out


def allowed(limit: int | float, non_empty: int) -> int:
    """How many of ``non_empty`` values may fail: a count as is, a fraction of the values
    (exact decimal arithmetic, rounded down: 1% of 250 values allows 2)."""
    if isinstance(limit, int):
        return limit
    return math.floor(Fraction(repr(limit)) * non_empty)


def describe_limit(limit: int | float) -> str:
    """``max_cast_failures`` as written: ``5`` or ``1%``."""
    if isinstance(limit, int):
        return str(limit)
    return f"{float(Fraction(repr(limit)) * 100):g}%"


def _short(value: str) -> str:
    return value if len(value) <= EXAMPLE_CHARS else value[:EXAMPLE_CHARS] + "…"


def _example(value: str) -> str:
    return repr(_short(value))  # quoted, newlines and control characters escaped: one line


def _summary(count: CastCount) -> str:
    shown = ", ".join(_example(v) for v in count.examples)
    return (
        f"{count.column} ({count.type}): {count.failed:,} of {count.non_empty:,} non-empty "
        f"values did not convert, e.g. {shown}"
    )


def _data(count: CastCount, limit: int | float) -> dict[str, Any]:
    return {
        "column": count.column,
        "type": count.type,
        "non_empty": count.non_empty,
        "failed": count.failed,
        "allowed": allowed(limit, count.non_empty),
        "examples": [_short(v) for v in count.examples],
    }


def check_casts(
    wh: Warehouse, bronze: Relation, silver: SilverConfig, limit: int | float | None
) -> tuple[Finding, ...]:
    """Count bronze's cast failures; the findings to record, or a DataError (carrying them)
    naming each column above ``limit`` (None: 0) with its count and examples."""
    limit = 0 if limit is None else limit
    counts = count_failures(wh, bronze, typed_columns(silver))
    if not counts:
        return ()
    shown_limit = describe_limit(limit)
    findings: list[Finding] = []
    over: list[CastCount] = []
    for c in counts:
        if not c.failed:
            continue
        if c.failed > allowed(limit, c.non_empty):
            over.append(c)
            message = f"{_summary(c)}; above max_cast_failures {shown_limit}, refused"
            severity = "error"
        else:
            message = f"{_summary(c)}; they load as NULL (max_cast_failures {shown_limit})"
            severity = "warn"
        findings.append(
            Finding("cast_failures", message, severity, count=c.failed, data=_data(c, limit))
        )
    total = sum(c.failed for c in counts)
    findings.append(
        Finding(
            "cast_counts",
            f"{len(counts)} typed {'column' if len(counts) == 1 else 'columns'} checked: "
            f"{total:,} non-empty {'value' if total == 1 else 'values'} did not convert",
            "info",
            count=total,
            data={
                "columns": {
                    c.column: {"type": c.type, "non_empty": c.non_empty, "failed": c.failed}
                    for c in counts
                },
                "max_cast_failures": shown_limit,
            },
        )
    )
    if over:
        raise DataError(
            f"{'; '.join(_summary(c) for c in over)}; above max_cast_failures {shown_limit}, "
            "nothing written to silver",
            findings=findings,
        )
    return tuple(findings)
