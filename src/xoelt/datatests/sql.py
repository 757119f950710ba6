"""The SQL of each data test kind, in Snowflake's dialect (DuckDB runs it translated).

Every name from config is a validated identifier and quoted with :func:`quote`; values are
literals (:func:`literal`); a user's ``expression`` is parsed with sqlglot and regenerated, so what
runs is one well-formed expression in parentheses. A row-level test is "the rows that
fail" (:class:`RowCheck`): their count, and up to :data:`EXAMPLES` of their keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xoelt.config.datatests import (
    AcceptedValues,
    DataTest,
    Expression,
    NotNull,
    Relationships,
    Unique,
    parse_expression,
)
from xoelt.warehouse.base import TableRef, literal, quote

EXAMPLES = 5
"""How many failing keys a result keeps."""

RESULTS_TABLE = "TEST_RESULTS"
RESULT_COLUMNS = (
    "RUN_ID",
    "PIPELINE",
    "SOURCE",
    "WINDOW_START",
    "WINDOW_END",
    "TEST_NAME",
    "TEST_KIND",
    "TABLE_NAME",
    "SEVERITY",
    "STATUS",
    "FAILING_ROWS",
    "EXAMPLE_KEYS",
    "MESSAGE",
    "TESTED_AT",
)


@dataclass(frozen=True)
class Subject:
    """What a set of tests looks at: a table, the predicate limiting it to the rows under
    test (None: all of it), and the columns a failing row is shown by."""

    source: str  # a source name, or "gold"
    table: TableRef
    scope: str | None
    key: tuple[str, ...]

    def where(self, *conditions: str) -> str:
        """``WHERE`` over the scope and ``conditions`` (empty when there are none)."""
        parts = [f"({self.scope})" if self.scope else "", *conditions]
        kept = [p for p in parts if p]
        return f" WHERE {' AND '.join(kept)}" if kept else ""


@dataclass(frozen=True)
class RowCheck:
    """A row-level test: ``count`` answers one number (failing rows); ``examples`` answers
    up to :data:`EXAMPLES` rows of ``example_columns``."""

    count: str
    examples: str | None
    example_columns: tuple[str, ...]


def _cols(names: Sequence[str], alias: str = "") -> str:
    prefix = f"{quote(alias)}." if alias else ""
    return ", ".join(f"{prefix}{quote(n)}" for n in names)


def _value(value: bool | int | float | str) -> str:
    """A literal in Snowflake's spelling (strings by :func:`literal`, as everywhere else)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return literal(value)


def expression_sql(text: str) -> str:
    """A user's expression, parsed and regenerated in Snowflake's dialect."""
    return parse_expression(text).sql(dialect="snowflake")


def resolve_table(name: str, near: TableRef) -> TableRef:
    """``TABLE``, ``SCHEMA.TABLE`` or ``DB.SCHEMA.TABLE``, the missing parts from ``near``."""
    parts = name.split(".")
    if len(parts) == 1:
        return near.with_name(parts[0])
    if len(parts) == 2:
        return TableRef(near.database, parts[0], parts[1])
    return TableRef(parts[0], parts[1], parts[2])


def _rows(subject: Subject, condition: str, shown: tuple[str, ...]) -> RowCheck:
    """Failing rows are the subject's rows where ``condition`` holds, shown by ``shown``."""
    table = subject.table.sql
    where = subject.where(condition)
    examples = None
    if shown:
        cols = _cols(shown)
        examples = f"SELECT {cols} FROM {table}{where} ORDER BY {cols} LIMIT {EXAMPLES}"
    return RowCheck(f"SELECT COUNT(*) FROM {table}{where}", examples, shown)


def row_check(test: DataTest, subject: Subject) -> RowCheck | None:
    """The failing rows of a row-level ``test`` (None for table-level kinds)."""
    key = subject.key
    if isinstance(test, NotNull):
        return _rows(subject, f"{quote(test.column)} IS NULL", key)
    if isinstance(test, AcceptedValues):
        values = ", ".join(_value(v) for v in test.values)
        column = quote(test.column)
        condition = f"{column} IS NOT NULL AND {column} NOT IN ({values})"
        return _rows(subject, condition, key or (test.column,))
    if isinstance(test, Expression):
        return _rows(subject, f"NOT COALESCE(({expression_sql(test.expression)}), FALSE)", key)
    if isinstance(test, Relationships):
        parent = resolve_table(test.to, subject.table)
        column = f'"c".{quote(test.column)}'
        condition = (
            f'{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent.sql} AS "p" '
            f'WHERE "p".{quote(test.field)} = {column})'
        )
        shown = key or (test.column,)
        where = subject.where(condition)
        table = f'{subject.table.sql} AS "c"'
        cols = _cols(shown, "c")
        return RowCheck(
            f"SELECT COUNT(*) FROM {table}{where}",
            f"SELECT {cols} FROM {table}{where} ORDER BY {cols} LIMIT {EXAMPLES}",
            shown,
        )
    if isinstance(test, Unique):
        cols = _cols(test.columns)
        not_null = " AND ".join(f"{quote(c)} IS NOT NULL" for c in test.columns)
        groups = (
            f"SELECT {cols}, COUNT(*) AS {quote('N')} FROM {subject.table.sql}"
            f"{subject.where(not_null)} GROUP BY {cols} HAVING COUNT(*) > 1"
        )
        return RowCheck(
            f'SELECT COALESCE(SUM("N"), 0) FROM ({groups}) AS "d"',
            f'SELECT {cols} FROM ({groups}) AS "d" ORDER BY {cols} LIMIT {EXAMPLES}',
            tuple(test.columns),
        )
    return None


def count_sql(subject: Subject) -> str:
    """The subject's rows under test."""
    return f"SELECT COUNT(*) FROM {subject.table.sql}{subject.where()}"


def newest_sql(subject: Subject, column: str) -> str:
    """The newest value of ``column`` among the rows under test."""
    return f"SELECT MAX({quote(column)}) FROM {subject.table.sql}{subject.where()}"


def _ledger(database: str) -> str:
    return f"{quote(database)}.{quote('XOELT')}.{quote('RUN_LEDGER')}"


def ledger_rows_sql(database: str, pipeline: str, source: str, before: str) -> str:
    """Successful transform row counts of ``source``'s windows that start before ``before``,
    from the run ledger: newest window first, then newest run first."""
    table = _ledger(database)
    window = f'"WINDOW_START" < {literal(before)}::TIMESTAMP_TZ'
    return (
        f'SELECT "WINDOW_START", "ROWS" FROM {table} WHERE "PIPELINE" = {literal(pipeline)} '
        f'AND "SOURCE" = {literal(source)} AND "STAGE" = \'transform\' '
        f'AND "STATUS" = \'success\' AND "ROWS" IS NOT NULL AND {window} '
        'ORDER BY "WINDOW_START" DESC, "FINISHED_AT" DESC'
    )


def ledger_window_sql(database: str, pipeline: str, source: str, start: str) -> str:
    """The latest successful transform row count of ``source`` for window ``start``."""
    table = _ledger(database)
    return (
        f'SELECT "ROWS" FROM {table} WHERE "PIPELINE" = {literal(pipeline)} '
        f'AND "SOURCE" = {literal(source)} AND "STAGE" = \'transform\' '
        f'AND "STATUS" = \'success\' AND "ROWS" IS NOT NULL '
        f'AND "WINDOW_START" = {literal(start)}::TIMESTAMP_TZ '
        'ORDER BY "FINISHED_AT" DESC LIMIT 1'
    )


def results_table(database: str) -> str:
    """``"DB"."XOELT"."TEST_RESULTS"``."""
    return f"{quote(database)}.{quote('XOELT')}.{quote(RESULTS_TABLE)}"
