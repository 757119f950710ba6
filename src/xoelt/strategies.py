"""Load strategies: how bronze becomes silver. One object per strategy, in one registry.

Each strategy answers what it needs (a primary key?), whether a backfill must run its
windows in order, which tables it owns, its :class:`~xoelt.warehouse.base.Script` and the row
count its headline step must reconcile with. Nothing outside this module tests a strategy's
name.

SQL is written once, in Snowflake's dialect (DuckDB gets it through sqlglot). Everything from
config or a source is an identifier validated upstream and quoted with ``quote``, or a
literal escaped with ``literal``. At plan time bronze's columns are not known yet: a
:class:`SilverColumns` then renders them as a comment, and the plan shows the typed ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from xoelt.config.models import SilverConfig
from xoelt.errors import DataError
from xoelt.scd2 import UNKNOWN_HASH, Scd2Tables, row_hash
from xoelt.warehouse.base import (
    BronzeRows,
    Count,
    Mismatch,
    Relation,
    Script,
    Step,
    TableRef,
    Yields,
    ddl,
    literal,
    quote,
)

SILVER_META: tuple[tuple[str, str], ...] = (
    ("_XO_WINDOW_START", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_END", "TIMESTAMP_TZ"),
    ("_XO_RUN_ID", "VARCHAR"),
    ("_XO_LOADED_AT", "TIMESTAMP_TZ"),
)
# A window's rows in the order extract wrote them: by part (part files' names sort in
# order), then row within the part.
_FILE_ORDER = (quote("_XO_SOURCE_FILE"), quote("_XO_FILE_ROW_NUMBER"))


def _latest(alias: str = "") -> str:
    """ORDER BY terms putting a window's last-written row first."""
    return ", ".join(f"{alias}{c} DESC" for c in _FILE_ORDER)


UNKNOWN_COLUMNS = "/* …every other bronze column, as VARCHAR, in bronze order… */"
_META_NAMES = [quote(n) for n, _ in SILVER_META]


@dataclass(frozen=True)
class SilverColumns:
    """Silver's source columns, in bronze order, typed where configured.

    ``complete`` is False at plan time: bronze's columns are unknown, ``typed`` holds only
    the configured ones, and every list renders the rest as :data:`UNKNOWN_COLUMNS`.
    """

    typed: tuple[tuple[str, str], ...]
    complete: bool

    @classmethod
    def of(cls, bronze_columns: Sequence[str] | None, silver: SilverConfig) -> SilverColumns:
        if bronze_columns is None:
            return cls(tuple(silver.columns.items()), complete=False)
        return cls(tuple((c, silver.columns.get(c, "VARCHAR")) for c in bronze_columns), True)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.typed]

    def _rest(self) -> list[str]:
        return [] if self.complete else [UNKNOWN_COLUMNS]

    def refs(self, alias: str = "") -> list[str]:
        """Column references (``alias."NAME"``), then the unknown rest."""
        return [f"{alias}{quote(n)}" for n in self.names] + self._rest()

    def casts(self) -> list[str]:
        """Each column converted to its silver type (VARCHAR ones as they are)."""
        return [_cast(n, t) for n, t in self.typed] + self._rest()

    def hashed(self, key: Sequence[str], alias: str = "") -> str:
        """The SCD2 row hash over every non-key column, typed (see :func:`scd2.row_hash`)."""
        if not self.complete:
            return UNKNOWN_HASH
        return row_hash([(n, t) for n, t in self.typed if n not in key], alias)


def _cast(name: str, type_: str) -> str:
    if type_ == "VARCHAR":
        return quote(name)
    return f"TRY_CAST({quote(name)} AS {type_}) AS {quote(name)}"


def _column_defs(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{quote(n)} {t}" for n, t in columns)


def _silver_ddl(table: TableRef, columns: SilverColumns) -> tuple[Step, ...]:
    """The schema and the silver table (source columns, then the metadata columns)."""
    return (
        ddl(f"CREATE SCHEMA IF NOT EXISTS {table.schema_sql}"),
        ddl(
            f"CREATE TABLE IF NOT EXISTS {table.sql} "
            f"({_column_defs([*columns.typed, *SILVER_META])})"
        ),
    )


def add_columns(
    table: TableRef, existing: Sequence[str], wanted: Sequence[tuple[str, str]]
) -> list[Step]:
    """ALTER TABLE … ADD COLUMN for each wanted column the table lacks (DDL: before BEGIN)."""
    have = set(existing)
    return [
        ddl(f"ALTER TABLE {table.sql} ADD COLUMN {quote(n)} {t}")
        for n, t in wanted
        if n not in have
    ]


@dataclass(frozen=True)
class SilverJob:
    """One window's silver transform: from which bronze rows (a table's, or a derived
    source's filtered rows: every strategy selects bronze through ``bronze.sql``) into which
    silver table."""

    bronze: Relation  # a TableRef: all its rows
    silver_table: TableRef
    silver: SilverConfig
    window_start: str  # ISO 8601 in the pipeline's time zone (its local date is the label's)
    timezone: str = "UTC"  # the pipeline's IANA time zone

    @property
    def window_date(self) -> str:
        """The local calendar date the window starts on (from the window, not a session)."""
        return datetime.fromisoformat(self.window_start).date().isoformat()


@dataclass(frozen=True)
class KeyCounts:
    """What bronze holds, counted before the transform: rows and distinct primary keys."""

    rows: int
    distinct_keys: int


class LoadStrategy:
    """How one source's silver is kept. Subclasses set the class attributes and ``script``."""

    name: ClassVar[str]
    requires_primary_key: ClassVar[bool] = False
    ordered_backfill: ClassVar[bool] = False  # windows must be transformed in window order

    def tables(self, silver_table: TableRef) -> list[TableRef]:
        """Every table this strategy writes for a source."""
        return [silver_table]

    def script(self, job: SilverJob, columns: SilverColumns) -> Script:
        raise NotImplementedError

    def expected_rows(self, counts: KeyCounts) -> int | None:
        """What the headline step must count (None: no reconciliation)."""
        return counts.rows

    def mismatch(self, job: SilverJob) -> Mismatch:
        table = job.silver_table

        def message(expected: int, got: Count) -> str:
            return (
                f"silver {table} got {got.rows} rows from {_bronze(job)}'s {expected}; rolled back"
            )

        return message

    def test_scope(self, job: SilverJob) -> str | None:
        """The rows of silver a data test looks at, as a predicate (None: the whole table)."""
        return None


class FullRefresh(LoadStrategy):
    """Immutable daily snapshots: the window's partition replaced (DELETE + INSERT)."""

    name = "full_refresh"

    def test_scope(self, job: SilverJob) -> str | None:
        """This window's snapshot: every other one is an earlier day's, already tested."""
        return f"{quote('_XO_WINDOW_START')} = {literal(job.window_start)}::TIMESTAMP_TZ"

    def script(self, job: SilverJob, columns: SilverColumns) -> Script:
        table = job.silver_table
        names = ", ".join([*columns.refs(), *_META_NAMES])
        select = f"SELECT {', '.join([*columns.casts(), *_META_NAMES])} FROM {job.bronze.sql}"
        return Script(
            prepare=_silver_ddl(table, columns),
            body=(
                Step(f"DELETE FROM {table.sql} WHERE {_in_window(job)}"),
                Step(f"INSERT INTO {table.sql} ({names}) {select}", Yields.AFFECTED, reconcile=0),
            ),
            holds=table,
            holds_where=_in_window(job),
        )


class Incremental(LoadStrategy):
    """Full pulls MERGEd on the primary key; the latest window (then row) wins.

    The source is deduplicated with QUALIFY over a total order first: Snowflake rejects
    duplicate source keys in MERGE, and DuckDB would pick one arbitrarily.
    """

    name = "incremental"
    requires_primary_key = True

    def expected_rows(self, counts: KeyCounts) -> int | None:
        return None  # a MERGE's count is updates plus inserts: reported, not reconciled

    def script(self, job: SilverJob, columns: SilverColumns) -> Script:
        table = job.silver_table
        key = [quote(k) for k in job.silver.primary_key]
        dedup = (
            f"SELECT {', '.join([*columns.casts(), *_META_NAMES, *_FILE_ORDER])} "
            f"FROM {job.bronze.sql} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(key)} "
            f"ORDER BY {_latest()}) = 1"
        )
        on = " AND ".join(f"t.{k} = s.{k}" for k in key)
        updated = [c for c in [*(quote(n) for n in columns.names), *_META_NAMES] if c not in key]
        updates = ", ".join(f"{c} = s.{c}" for c in updated)
        targets = ", ".join([*columns.refs(), *_META_NAMES])
        values = ", ".join([*columns.refs("s."), *(f"s.{c}" for c in _META_NAMES)])
        end = quote("_XO_WINDOW_END")
        return Script(
            prepare=_silver_ddl(table, columns),
            body=(
                Step(
                    f"MERGE INTO {table.sql} AS t USING ({dedup}) AS s ON {on} "
                    f"WHEN MATCHED AND s.{end} >= t.{end} THEN UPDATE SET {updates} "
                    f"WHEN NOT MATCHED THEN INSERT ({targets}) VALUES ({values})",
                    Yields.AFFECTED,
                ),
            ),
        )


class Historical(LoadStrategy):
    """SCD type 2, the same whatever order windows arrive in (the SQL: :mod:`xoelt.scd2`).

    Each window's pull is kept as a snapshot (``<TABLE>__SNAPSHOTS``, the window's partition
    replaced, one row per key), the window itself is recorded (``<TABLE>__WINDOWS``, so an
    empty pull counts), and the SCD2 table is rebuilt from all of them in window order:
    versions start where a key's typed row hash changes, keys missing from a pull are
    handled by ``silver.hard_deletes``. Effective dates are window starts, never load times.
    """

    name = "historical"
    requires_primary_key = True
    ordered_backfill = True

    def tables(self, silver_table: TableRef) -> list[TableRef]:
        """The tables holding the source's columns (the windows table holds none)."""
        return [self.snapshots(silver_table), silver_table]

    @staticmethod
    def snapshots(silver_table: TableRef) -> TableRef:
        return Scd2Tables(silver_table).snapshots

    def expected_rows(self, counts: KeyCounts) -> int | None:
        return counts.distinct_keys  # one snapshot row per key

    def mismatch(self, job: SilverJob) -> Mismatch:
        table = self.snapshots(job.silver_table)

        def message(expected: int, got: Count) -> str:
            return (
                f"snapshot {table} got {got.rows} keys from {_bronze(job)}'s {expected} "
                "distinct keys: "
                "keys that differ as text are equal (or not convertible) once typed by "
                "silver.columns; rolled back"
            )

        return message

    def test_scope(self, job: SilverJob) -> str | None:
        """The current versions: one row per key (earlier versions repeat the key)."""
        return quote("IS_CURRENT")

    def script(self, job: SilverJob, columns: SilverColumns) -> Script:
        tables = Scd2Tables(job.silver_table, job.silver.hard_deletes)
        pk = job.silver.primary_key
        clash = [n for n, _ in tables.meta if n in columns.names]
        if clash:
            raise DataError(
                f"source columns {', '.join(clash)} have the names of {job.silver_table}'s "
                "SCD2 columns; rename them in the source (or use another hard_deletes mode)"
            )
        # Deduplicated on the typed key: keys that differ only as text are one key.
        snapshot = (
            f"INSERT INTO {tables.snapshots.sql} ({', '.join([*columns.refs(), *_META_NAMES])}) "
            f"SELECT {', '.join([*columns.refs(), *_META_NAMES])} FROM (SELECT "
            f"{', '.join([*columns.casts(), *_META_NAMES, *_FILE_ORDER])} FROM {job.bronze.sql}) "
            f"AS b QUALIFY ROW_NUMBER() OVER (PARTITION BY "
            f"{', '.join(f'b.{quote(k)}' for k in pk)} ORDER BY {_latest('b.')}) = 1"
        )
        return Script(
            prepare=tables.prepare(
                _column_defs([*columns.typed, *SILVER_META]),
                _column_defs([*columns.typed, *tables.meta]),
            ),
            body=(
                Step(f"DELETE FROM {tables.snapshots.sql} WHERE {_in_window(job)}"),
                Step(snapshot, Yields.AFFECTED, reconcile=0),
                *tables.record_window(job.window_start, job.window_date, job.timezone),
                *tables.rebuild(pk, columns.refs(), columns.hashed(pk, "s.")),
            ),
            holds=tables.snapshots,
            holds_where=_in_window(job),
        )


def _bronze(job: SilverJob) -> str:
    """Bronze as a reconciliation message names it (a derived source's: filtered)."""
    filtered = isinstance(job.bronze, BronzeRows) and job.bronze.where is not None
    return "the filtered bronze" if filtered else "bronze"


def _in_window(job: SilverJob) -> str:
    """The condition selecting the window's partition of a silver (or snapshots) table."""
    return f"{quote('_XO_WINDOW_START')} = {literal(job.window_start)}::TIMESTAMP_TZ"


STRATEGIES: dict[str, LoadStrategy] = {
    s.name: s for s in (FullRefresh(), Incremental(), Historical())
}


def strategy(name: str) -> LoadStrategy:
    """The strategy called ``name``; the error lists the valid names."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown load_strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
