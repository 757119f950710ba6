"""SCD type 2 from window snapshots: the SQL of the ``historical`` load strategy.

For a silver table ``T`` the strategy keeps three tables:

- ``T__SNAPSHOTS``: each transformed window's pull, typed, one row per primary key (the last
  row of the file wins); transforming a window again replaces its rows.
- ``T__WINDOWS``: one row per transformed window, ``_XO_WINDOW_START`` and
  ``_XO_WINDOW_DATE`` (the calendar date the window starts on in the pipeline's time zone),
  whether or not its pull had rows: an empty pull is a window of the history.
- ``T``: the history, rebuilt from those two in window order whenever a window is
  transformed, so it is the same whatever order windows arrive in.

**Validity.** ``VALID_FROM`` and ``VALID_TO`` are window start instants (``TIMESTAMP_TZ``),
half-open: a version holds from the start of the first window it was seen in to the start
of the window where it changed or went missing; ``VALID_TO`` NULL means current
(``IS_CURRENT``). ``VALID_FROM_DATE``/``VALID_TO_DATE`` are those windows' local dates,
written as literals from the window at plan time, so gold SQL gets the same date on Snowflake
and DuckDB whatever the session's time zone. ``_XO_RUN_ID``/``_XO_LOADED_AT`` are those of
the run that first delivered the version's values.

**Change.** A key gets a new version when its row hash changes. ``ROW_HASH`` is the MD5 of
the non-key source columns in name order, each non-NULL one as
``NAME:<length>:<text>;``, where ``<text>`` is the *typed* value written the same way on
both engines (:func:`canonical`). A NULL or absent column contributes nothing: a column added
later leaves every older row's hash alone, and one instant delivered in another UTC offset
hashes alike. The hash is computed at rebuild time from the snapshot's typed values, never
stored per snapshot, so the column set it covers never depends on load order.

**Deletions** (``silver.hard_deletes``, with dbt snapshots' meanings):

- ``invalidate`` (default): a key missing from a window's pull is closed at that window; if
  it comes back, a new version starts.
- ``ignore``: a missing key stays open; its version ends only when it comes back changed.
- ``new_record``: as ``invalidate``, and a deletion record (``IS_DELETED``, the last values)
  holds from the window the key went missing until it comes back (or is current). Only this
  mode has the ``IS_DELETED`` column (dbt adds ``dbt_is_deleted`` only then); a table
  switched away from it keeps the column, NULL after the next rebuild.

**Upgrade.** Tables of the earlier strategy (snapshots with a stored ``ROW_HASH``, no windows
table) need nothing done by hand: the stored hash is ignored (every rebuild rehashes), the
windows table is filled with every snapshot window it lacks (its date from the start instant
in the pipeline's time zone; empty pulls of that era were never recorded) and the new
columns are added with ``ADD COLUMN IF NOT EXISTS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from xoelt.config.models import HardDeletes
from xoelt.warehouse.base import Step, TableRef, ddl, literal, quote

HARD_DELETES: tuple[str, ...] = get_args(HardDeletes)
SNAPSHOT_SUFFIX = "__SNAPSHOTS"
WINDOWS_SUFFIX = "__WINDOWS"
SCD2_META: tuple[tuple[str, str], ...] = (
    ("ROW_HASH", "VARCHAR"),
    ("VALID_FROM", "TIMESTAMP_TZ"),
    ("VALID_TO", "TIMESTAMP_TZ"),
    ("VALID_FROM_DATE", "DATE"),
    ("VALID_TO_DATE", "DATE"),
    ("IS_CURRENT", "BOOLEAN"),
    ("_XO_RUN_ID", "VARCHAR"),
    ("_XO_LOADED_AT", "TIMESTAMP_TZ"),
)
# Only new_record has deletion records (as dbt adds dbt_is_deleted only then): a source's own
# IS_DELETED column keeps working under the other modes.
DELETED_META = ("IS_DELETED", "BOOLEAN")
# Columns the earlier strategy's SCD2 table lacks (IS_DELETED: a mode switched to later).
ADDED_META = ("VALID_FROM_DATE", "VALID_TO_DATE", "IS_DELETED")
WINDOW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_XO_WINDOW_START", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_DATE", "DATE"),
)
UNKNOWN_HASH = "MD5(/* every non-NULL non-key column, typed, in name order */)"

_TIME_FORMAT = "'YYYY-MM-DD HH24:MI:SS.FF9'"
# The rebuild's working columns, as "_XO_<name>" (the metadata prefix: no source column's).
# WS/WD/WN: a window's start, date and number; NEXT_*: the next window's; START: 1 where a
# version starts; END_*: the window after a version's last; NEXT_FROM*: the next version's.
_HELPERS = (
    *("WS", "WD", "WN", "NEXT_WS", "NEXT_WD", "HASH", "START", "VERSION"),
    *("END_WS", "END_WD", "NEXT_FROM", "NEXT_FROM_DATE"),
)
_WS, _WD = quote("_XO_WINDOW_START"), quote("_XO_WINDOW_DATE")


def canonical(ref: str, type_: str) -> str:
    """A typed value as text that is the same on Snowflake and DuckDB for the same value.

    Instants (``TIMESTAMP_TZ``/``_LTZ``) are written in UTC, so one instant in two offsets
    is one text; ``TIMESTAMP_NTZ`` as its wall clock; both with nanoseconds (DuckDB's
    microseconds padded) and never through a session's output format. Dates are days since
    1970-01-01; numbers and booleans their ``TO_VARCHAR`` (fixed-point for NUMBER; FLOAT's
    text is each engine's own, stable within one warehouse).
    """
    if type_ == "VARCHAR":
        return ref
    if type_ in ("TIMESTAMP_TZ", "TIMESTAMP_LTZ"):
        return f"TO_VARCHAR(CONVERT_TIMEZONE('UTC', {ref}), {_TIME_FORMAT})"
    if type_ == "TIMESTAMP_NTZ":
        return f"TO_VARCHAR(CONVERT_TIMEZONE('UTC', 'UTC', {ref}), {_TIME_FORMAT})"
    if type_ == "DATE":
        return f"TO_VARCHAR(DATEDIFF(DAY, '1970-01-01'::DATE, {ref}))"
    return f"TO_VARCHAR({ref})"


def row_hash(columns: Sequence[tuple[str, str]], alias: str = "") -> str:
    """MD5 over ``columns`` (name, silver type): each non-NULL one ``NAME:<len>:<text>;``.

    Name-tagged and in name order, so which columns exist (and in what order bronze has them)
    does not matter, only their non-NULL values; the length prefix keeps ``a;b`` + ``c`` apart
    from ``a`` + ``b;c``, and '' (``NAME:0:;``) apart from NULL (nothing).
    """
    parts = []
    for name, type_ in sorted(columns):
        ref = f"{alias}{quote(name)}"
        text = canonical(ref, type_)
        tag = literal(f"{name}:")
        parts.append(f"IFF({ref} IS NULL, '', {tag} || LENGTH({text}) || ':' || {text} || ';')")
    return "MD5(" + (" || ".join(parts) if parts else "''") + ")"


@dataclass(frozen=True)
class Scd2Tables:
    """The three tables of one historical source (see the module docstring)."""

    table: TableRef
    hard_deletes: str = "invalidate"

    def __post_init__(self) -> None:
        if self.hard_deletes not in HARD_DELETES:
            raise ValueError(f"hard_deletes {self.hard_deletes!r} is not one of {HARD_DELETES}")

    @property
    def meta(self) -> tuple[tuple[str, str], ...]:
        """The SCD2 table's own columns, after the source's."""
        return (*SCD2_META, DELETED_META) if self.hard_deletes == "new_record" else SCD2_META

    @property
    def snapshots(self) -> TableRef:
        return self.table.with_name(self.table.name + SNAPSHOT_SUFFIX)

    @property
    def windows(self) -> TableRef:
        return self.table.with_name(self.table.name + WINDOWS_SUFFIX)

    def prepare(self, snapshot_defs: str, table_defs: str) -> tuple[Step, ...]:
        """DDL before the transaction: the tables, and the columns older tables lack."""
        return (
            ddl(f"CREATE SCHEMA IF NOT EXISTS {self.table.schema_sql}"),
            ddl(f"CREATE TABLE IF NOT EXISTS {self.snapshots.sql} ({snapshot_defs})"),
            ddl(
                f"CREATE TABLE IF NOT EXISTS {self.windows.sql} "
                f"({', '.join(f'{quote(n)} {t}' for n, t in WINDOW_COLUMNS)})"
            ),
            ddl(f"CREATE TABLE IF NOT EXISTS {self.table.sql} ({table_defs})"),
            *(
                ddl(f"ALTER TABLE {self.table.sql} ADD COLUMN IF NOT EXISTS {quote(n)} {t}")
                for n, t in self.meta
                if n in ADDED_META
            ),
        )

    def record_window(self, window_start: str, window_date: str, timezone: str) -> list[Step]:
        """Record this window (its date a literal), and every snapshot window a table of the
        earlier strategy holds without a record (its date from the instant, in ``timezone``)."""
        ws = f"{literal(window_start)}::TIMESTAMP_TZ"
        return [
            Step(f"DELETE FROM {self.windows.sql} WHERE {_WS} = {ws}"),
            Step(
                f"INSERT INTO {self.windows.sql} ({_WS}, {_WD}) "
                f"SELECT {ws}, {literal(window_date)}::DATE"
            ),
            Step(
                f"INSERT INTO {self.windows.sql} ({_WS}, {_WD}) "
                f"SELECT DISTINCT s.{_WS}, CONVERT_TIMEZONE({literal(timezone)}, s.{_WS})::DATE "
                f"FROM {self.snapshots.sql} AS s WHERE NOT EXISTS (SELECT 1 FROM "
                f"{self.windows.sql} AS w WHERE w.{_WS} = s.{_WS})"
            ),
        ]

    def rebuild(self, key: Sequence[str], columns: Sequence[str], hashed: str) -> list[Step]:
        """Replace the history with one rebuilt from every snapshot, in window order.

        ``columns``: the source columns (refs without alias, or the plan's placeholder),
        ``hashed``: the row hash over alias ``s.``.
        """
        hard_deletes = self.hard_deletes
        h = {n: quote(f"_XO_{n}") for n in _HELPERS}
        run_id, loaded_at = quote("_XO_RUN_ID"), quote("_XO_LOADED_AT")

        def keys(alias: str) -> str:
            return ", ".join(f"{alias}.{quote(k)}" for k in key)

        def cols(alias: str) -> str:
            return ", ".join(c if c.startswith("/*") else f"{alias}.{c}" for c in columns)

        by_window = f"OVER (ORDER BY w.{_WS})"
        by_key = f"OVER (PARTITION BY {keys('o')} ORDER BY o.{h['WN']})"
        same = f"LAG(o.{h['HASH']}) {by_key} = o.{h['HASH']}"
        if hard_deletes != "ignore":  # a gap (a window without the key) ends a version
            same += f" AND LAG(o.{h['WN']}) {by_key} = o.{h['WN']} - 1"
        version = f"PARTITION BY {keys('n')}, n.{h['VERSION']}"
        ctes = (
            f"WITH win AS (SELECT w.{_WS} AS {h['WS']}, w.{_WD} AS {h['WD']}, "
            f"ROW_NUMBER() {by_window} AS {h['WN']}, LEAD(w.{_WS}) {by_window} AS {h['NEXT_WS']}, "
            f"LEAD(w.{_WD}) {by_window} AS {h['NEXT_WD']} FROM {self.windows.sql} AS w), "
            f"obs AS (SELECT {cols('s')}, s.{run_id}, s.{loaded_at}, w.{h['WS']}, w.{h['WD']}, "
            f"w.{h['WN']}, w.{h['NEXT_WS']}, w.{h['NEXT_WD']}, {hashed} AS {h['HASH']} "
            f"FROM {self.snapshots.sql} AS s JOIN win AS w ON w.{h['WS']} = s.{_WS}), "
            f"marked AS (SELECT o.*, IFF({same}, 0, 1) AS {h['START']} FROM obs AS o), "
            f"numbered AS (SELECT m.*, SUM(m.{h['START']}) OVER (PARTITION BY {keys('m')} "
            f"ORDER BY m.{h['WN']} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
            f"AS {h['VERSION']} FROM marked AS m), "
            # One row per version: its first snapshot row, with where its last one ends.
            f"versions AS (SELECT n.*, "
            f"FIRST_VALUE(n.{h['NEXT_WS']}) OVER ({version} ORDER BY n.{h['WN']} DESC) AS {h['END_WS']}, "
            f"FIRST_VALUE(n.{h['NEXT_WD']}) OVER ({version} ORDER BY n.{h['WN']} DESC) AS {h['END_WD']} "
            f"FROM numbered AS n QUALIFY ROW_NUMBER() OVER ({version} ORDER BY n.{h['WN']}) = 1), "
            f"spans AS (SELECT v.*, "
            f"LEAD(v.{h['WS']}) OVER (PARTITION BY {keys('v')} ORDER BY v.{h['WN']}) AS {h['NEXT_FROM']}, "
            f"LEAD(v.{h['WD']}) OVER (PARTITION BY {keys('v')} ORDER BY v.{h['WN']}) "
            f"AS {h['NEXT_FROM_DATE']} FROM versions AS v) "
        )
        if hard_deletes == "ignore":  # a version ends where the next one starts
            to, to_date = f"x.{h['NEXT_FROM']}", f"x.{h['NEXT_FROM_DATE']}"
        else:  # …or at the window after its last snapshot
            to, to_date = f"x.{h['END_WS']}", f"x.{h['END_WD']}"
        select = (
            f"SELECT {cols('x')}, x.{h['HASH']}, x.{h['WS']}, {to}, x.{h['WD']}, {to_date}, "
            f"{to} IS NULL, x.{run_id}, x.{loaded_at}"
            f"{', FALSE' if hard_deletes == 'new_record' else ''} FROM spans AS x"
        )
        if hard_deletes == "new_record":  # the gap after a version, until the key is back
            gap = f"x.{h['END_WS']} IS NOT NULL AND (x.{h['NEXT_FROM']} IS NULL OR x.{h['NEXT_FROM']} <> x.{h['END_WS']})"
            select += (
                f" UNION ALL SELECT {cols('x')}, x.{h['HASH']}, x.{h['END_WS']}, "
                f"x.{h['NEXT_FROM']}, x.{h['END_WD']}, x.{h['NEXT_FROM_DATE']}, "
                f"x.{h['NEXT_FROM']} IS NULL, x.{run_id}, x.{loaded_at}, TRUE "
                f"FROM spans AS x WHERE {gap}"
            )
        targets = ", ".join([*columns, *(quote(n) for n, _ in self.meta)])
        return [
            Step(f"DELETE FROM {self.table.sql}"),
            Step(f"INSERT INTO {self.table.sql} ({targets}) {ctes}{select}"),
        ]
