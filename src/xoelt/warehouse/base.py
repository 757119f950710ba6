"""The warehouse interface, scripts and the one runner that executes them.

A load or transform is a :class:`Script`: steps that run before the transaction (``prepare``:
DDL, and on engines that need it the loading of a shadow table), the transactional ``body``,
and ``cleanup`` that runs whatever happened. Each step says what row count it yields. The
runner (:func:`run_script`) is shared by every engine: prepare, then ``BEGIN``, the body,
reconciliation of the counts against what was expected, ``COMMIT`` — or an explicit
``ROLLBACK`` on any error (DuckDB aborts a transaction on a failed statement and a later
COMMIT would silently discard the work; Snowflake keeps it open). ``plan`` prints
:meth:`Script.statements`, so what is shown is what runs.

Engine differences are :class:`Capabilities`, read by shared code: the runner refuses DDL
inside a transaction where DDL would commit it, backfill runs windows at once only where the
engine allows concurrent writers.
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from xoelt.errors import DataError, WarehouseError
from xoelt.findings import Finding

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

METADATA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_XO_RUN_ID", "VARCHAR"),
    ("_XO_SOURCE_FILE", "VARCHAR"),
    ("_XO_FILE_ROW_NUMBER", "NUMBER(38,0)"),
    ("_XO_LOADED_AT", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_START", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_END", "TIMESTAMP_TZ"),
)
METADATA_NAMES = tuple(name for name, _ in METADATA_COLUMNS)


def quote(identifier: str) -> str:
    """Quote a validated identifier; anything else is refused (never pasted into SQL)."""
    if not _IDENT.match(identifier):
        raise ValueError(f"refusing to quote invalid identifier {identifier!r}")
    return f'"{identifier}"'


def literal(text: str) -> str:
    """A SQL string literal (single quotes doubled; backslashes doubled for Snowflake)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class TableRef:
    database: str
    schema: str
    name: str

    @property
    def sql(self) -> str:
        return f"{quote(self.database)}.{quote(self.schema)}.{quote(self.name)}"

    @property
    def schema_sql(self) -> str:
        return f"{quote(self.database)}.{quote(self.schema)}"

    def __str__(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"

    def with_name(self, name: str) -> TableRef:
        return TableRef(self.database, self.schema, name)


@dataclass(frozen=True)
class BronzeRows:
    """The bronze rows a silver transform reads: all of ``table``'s, or those a derived
    source's ``where`` (one predicate without comments, validated at load) keeps.

    :attr:`sql` is a FROM item, so every strategy, the cast count and the key counts select
    through this one value and a derived source's filter cannot be left out of one of them.
    """

    table: TableRef
    where: str | None = None

    @property
    def sql(self) -> str:
        if self.where is None:
            return self.table.sql
        return f"(SELECT * FROM {self.table.sql} WHERE ({self.where})) AS {quote('_XO_BRONZE')}"

    def __str__(self) -> str:
        return str(self.table) if self.where is None else f"{self.table} where {self.where}"


Relation = TableRef | BronzeRows
"""Something rows are selected from: a table, or a table's filtered rows."""


@dataclass(frozen=True)
class Capabilities:
    """What differs between engines, as data; shared code branches on these, not on types.

    ``transactional_ddl``: DDL inside BEGIN…COMMIT is part of the transaction (DuckDB); where
    it is not (Snowflake commits the open transaction), the runner refuses such a script.
    ``copy_transformations``: bronze loads may use ``COPY … FROM (SELECT $1, METADATA$…)``.
    ``concurrent_windows``: several processes/threads may load windows at once (a backfill's
    ``--workers``); one DuckDB file has one writer.
    """

    dialect: str
    transactional_ddl: bool
    copy_transformations: bool
    concurrent_windows: bool


class Yields(enum.Enum):
    """What row count a step's answer carries."""

    NOTHING = "nothing"
    AFFECTED = "affected"  # a DML statement's affected rows
    COPIED = "copied"  # a COPY INTO's rows loaded, over the files it processed
    # A validation pass: one answer row per rejected record. Any at all fails the script
    # (a DataError saying what the step's ``rejects`` are), before anything is committed.
    REJECTED = "rejected"


@dataclass(frozen=True)
class Count:
    """A step's row count; ``note`` explains an odd one (e.g. COPY found no file).

    ``files``: the count file by file, where the answer gives one (a COPY's row per file):
    the runner reconciles each with its part's extracted rows.
    """

    rows: int
    note: str = ""
    files: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Step:
    """One statement. ``ddl`` marks schema changes; ``reconcile`` (an offset per file the
    step read, usually 0; 1 where each file's header is read as a row) says the step's count
    must equal the script's expected rows plus that offset, file by file where the count
    has them; ``rejects`` names what a :attr:`Yields.REJECTED` step's answer rows are."""

    sql: str
    yields: Yields = Yields.NOTHING
    ddl: bool = False
    reconcile: int | None = None
    rejects: str = "rejected row(s)"


def ddl(sql: str) -> Step:
    """A schema-changing step."""
    return Step(sql, ddl=True)


@dataclass(frozen=True)
class Script:
    """What a load or transform runs, in order: prepare, BEGIN, body, COMMIT, cleanup.

    ``holds``: before COMMIT this table (its rows matching ``holds_where``, a condition, if
    set) must hold exactly the expected rows — what the statements' own counts say is then
    checked against the table itself, so a statement that ran twice (a retried request whose
    first answer was lost) cannot commit duplicates. ``holds_by`` names the column that says
    which file a row came from: when several parts are expected, the table's rows are also
    counted file by file against each part's. ``on_failure``
    steps run (best effort) after a failure, e.g. dropping a half-filled shadow table.
    ``begin`` is how the engine spells BEGIN, for :meth:`statements`.
    """

    prepare: tuple[Step, ...]
    body: tuple[Step, ...]
    cleanup: tuple[Step, ...] = ()
    on_failure: tuple[Step, ...] = ()
    holds: TableRef | None = None
    holds_where: str | None = None
    holds_by: str | None = None
    begin: str = "BEGIN"
    native: bool = False  # written in the engine's own dialect (else Snowflake's, translated)

    def statements(self) -> list[str]:
        """The statements in the order they run (what ``plan`` prints)."""
        return [
            *(s.sql for s in self.prepare),
            self.begin,
            *(s.sql for s in self.body),
            "COMMIT",
            *(s.sql for s in self.cleanup),
        ]


Mismatch = Callable[[int, Count], str]
"""Builds the message for a count that does not reconcile: (expected, what the step gave)."""


@dataclass
class ScriptResult:
    """Counts of the steps that yield one, in order; ``rows`` is the first (the headline)."""

    counts: list[Count] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.counts[0].rows if self.counts else 0


@dataclass(frozen=True)
class Answer:
    """A statement's result: column names and rows."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class Warehouse(Protocol):
    """A connection to one warehouse. SQL given to ``query`` is in Snowflake's dialect."""

    capabilities: Capabilities

    def query(self, sql: str, *, native: bool = False) -> Answer:
        """Run one statement (Snowflake's dialect, or the engine's own if ``native``).

        Returns its columns and rows; any failure is a WarehouseError.
        """
        ...

    def count_of(self, yields: Yields, answer: Answer) -> Count:
        """Read the row count a step's answer carries (engines answer DML differently)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """BEGIN … COMMIT; explicit ROLLBACK on any error."""
        ...

    def table_columns(self, table: TableRef) -> list[str] | None:
        """Column names in order, or None if the table does not exist."""
        ...

    def bronze_script(
        self, load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None
    ) -> Script:
        """The script that replaces bronze with the staged file's rows.

        ``existing``: bronze's columns now (None: no table, or unknown at plan time).
        ``run``: the run id and load time (None at plan time: rendered as placeholders).
        """
        ...

    def location(self, database: str) -> str:
        """Where the database lives, for messages: a file path, an account URL."""
        ...

    def set_query_tag(self, tag: str) -> None:
        """Label the session's next statements (Snowflake's ``QUERY_TAG``; a no-op elsewhere)."""
        ...

    def close(self) -> None: ...


def execute(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows."""
    return wh.query(sql).rows


def count_rows(wh: Warehouse, table: Relation, where: str | None = None) -> int:
    """Rows in ``table`` (those matching the condition ``where``, if given)."""
    condition = f" WHERE {where}" if where else ""
    return int(wh.query(f"SELECT COUNT(*) FROM {table.sql}{condition}").rows[0][0])


@dataclass(frozen=True)
class FilePart:
    """One staged part: its key in the stage bucket, where the warehouse reads it, and the
    rows extract wrote to it (None: unknown, at plan time)."""

    key: str
    file_uri: str
    rows: int | None = None

    def named_by(self, name: str) -> bool:
        """Whether ``name``, a file as a warehouse reports it (an ``s3://`` URL, a path in
        the stage, a local path), is this part."""
        return name in (self.key, self.file_uri) or name.endswith("/" + self.key)

    @property
    def compressed(self) -> bool:
        return self.key.endswith(".gz")


@dataclass(frozen=True)
class BronzeLoad:
    """Everything needed to (re)load one bronze table from a window's staged CSV parts.

    ``key``/``file_uri`` are the first part's; ``parts`` all of them (empty: that one file).
    """

    table: TableRef
    columns: Sequence[str]
    bucket: str
    key: str
    file_uri: str
    window_start: str
    window_end: str
    parts: tuple[FilePart, ...] = ()

    @property
    def files(self) -> tuple[FilePart, ...]:
        """Every part to load, in order (at least the first)."""
        return self.parts or (FilePart(self.key, self.file_uri),)

    @property
    def compressed(self) -> bool:
        """The parts are gzip files (a window's parts are all one format)."""
        return self.files[0].compressed

    def bronze_columns(self, existing: Sequence[str] | None) -> list[str]:
        """Bronze's source columns after this load: today's, then the file's new ones."""
        kept = [c for c in existing or [] if c not in METADATA_NAMES]
        return kept + [c for c in self.columns if c not in kept]


@dataclass(frozen=True)
class RunStamp:
    """The values a load writes into every row's metadata: which run, and when."""

    run_id: str
    loaded_at: str


def rejected_count(answer: Answer) -> Count:
    """A validation pass's answer: one row per rejected record; the note quotes the first
    (its ``line`` and ``error`` where the answer has such columns, never the record)."""
    if not answer.rows:
        return Count(0)
    first = dict(zip([c.lower() for c in answer.columns], answer.rows[0], strict=False))
    error = first.get("error", answer.rows[0])
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    line = first.get("line")
    return Count(len(answer.rows), f"line {line}: {text}" if line is not None else text)


def rejected(step: Step, count: Count) -> DataError:
    """The error for a validation step that rejected ``count.rows`` records (none loaded)."""
    message = f"{count.rows} {step.rejects}, first at {count.note}; nothing was loaded"
    return DataError(
        message, findings=[Finding("rejected_rows", message, "error", count=count.rows)]
    )


def check_count(expected: int, got: Count, mismatch: Mismatch) -> None:
    """DataError unless ``got`` is exactly ``expected`` (a note, such as "no file", fails
    any non-zero expectation)."""
    if got.rows != expected or (got.note and expected > 0):
        raise DataError(mismatch(expected, got))


def bronze_mismatch(table: TableRef) -> Mismatch:
    """The message for a bronze load whose rows do not reconcile with the extract."""

    def message(expected: int, got: Count) -> str:
        return (
            f"row count mismatch for {table}: extracted {expected}, loaded {got.rows}"
            f"{got.note}; bronze left unchanged"
        )

    return message


def _part_of(parts: Sequence[FilePart], name: str) -> FilePart:
    for part in parts:
        if part.named_by(name):
            return part
    raise DataError(f"the load read {name}, which is not one of this window's parts")


def check_parts(
    parts: Sequence[FilePart],
    counted: Sequence[tuple[str, int]],
    offset: int,
    mismatch: Mismatch,
) -> None:
    """Each part's rows (``counted``: file name, count) must be its extracted rows plus
    ``offset``; a part counted nowhere counts 0. The error names the part."""
    got: dict[str, int] = {}
    for name, rows in counted:
        part = _part_of(parts, str(name))
        got[part.key] = got.get(part.key, 0) + int(rows) - offset
    for part in parts:
        assert part.rows is not None  # the runner is given only parts with known counts
        loaded = got.get(part.key, 0)
        if loaded != part.rows:
            raise DataError(mismatch(part.rows, Count(loaded, f" from part {part.key}")))


def run_script(
    wh: Warehouse,
    script: Script,
    *,
    expected: int | None,
    mismatch: Mismatch,
    parts: Sequence[FilePart] = (),
) -> ScriptResult:
    """Execute ``script`` on ``wh``: prepare, BEGIN, body, reconcile, COMMIT; cleanup always.

    A step marked ``reconcile`` must count ``expected`` (plus its offset) and the ``holds``
    table must hold ``expected`` rows, checked before COMMIT: a mismatch is a DataError and
    nothing the body did is kept. A :attr:`Yields.REJECTED` step that rejects anything is a
    DataError at once (in ``prepare``: before the transaction even starts). ``parts``
    (with their extracted rows) are reconciled one by one too: with each file of a count
    that has files, and when there are several, with ``holds`` counted by ``holds_by``.
    """
    if not wh.capabilities.transactional_ddl and any(step.ddl for step in script.body):
        raise WarehouseError(
            f"{wh.capabilities.dialect} commits an open transaction on DDL: this script "
            "would not be atomic"
        )
    result = ScriptResult()
    checks: list[tuple[Step, Count]] = []

    def run(step: Step) -> None:
        answer = wh.query(step.sql, native=script.native)
        if step.yields is Yields.REJECTED:
            count = wh.count_of(step.yields, answer)
            if count.rows:
                raise rejected(step, count)
        elif step.yields is not Yields.NOTHING:
            count = wh.count_of(step.yields, answer)
            result.counts.append(count)
            if step.reconcile is not None:
                checks.append((step, count))

    try:
        try:
            for step in script.prepare:
                run(step)
            with wh.transaction():
                for step in script.body:
                    run(step)
                if expected is not None:
                    # part by part first: a part's mismatch is the one worth naming
                    for step, count in checks:
                        if parts and count.files:
                            check_parts(parts, count.files, step.reconcile or 0, mismatch)
                    if script.holds is not None and len(parts) > 1 and script.holds_by:
                        check_parts(parts, held_by(wh, script), 0, mismatch)
                    for step, count in checks:
                        offset = (step.reconcile or 0) * max(len(count.files), 1)
                        check_count(
                            expected, Count(max(count.rows - offset, 0), count.note), mismatch
                        )
                    if script.holds is not None:
                        held = count_rows(wh, script.holds, script.holds_where)
                        check_count(expected, Count(held), mismatch)
        except BaseException:
            for step in script.on_failure:
                with contextlib.suppress(WarehouseError):
                    wh.query(step.sql, native=script.native)
            raise
    finally:
        for step in script.cleanup:
            with contextlib.suppress(WarehouseError):
                wh.query(step.sql, native=script.native)
    return result


def held_by(wh: Warehouse, script: Script) -> list[tuple[str, int]]:
    """The ``holds`` table's rows counted by ``holds_by`` (the file each came from)."""
    assert script.holds is not None and script.holds_by is not None
    by = quote(script.holds_by)
    condition = f" WHERE {script.holds_where}" if script.holds_where else ""
    rows = wh.query(f"SELECT {by}, COUNT(*) FROM {script.holds.sql}{condition} GROUP BY {by}").rows
    return [(str(name), int(n)) for name, n in rows]


def load_bronze(wh: Warehouse, load: BronzeLoad, run: RunStamp, expected_rows: int) -> int:
    """Atomically replace bronze with the staged parts' rows; fail unless exactly
    ``expected_rows`` reached it, and each part's rows where they are known. Returns the
    rows in bronze."""
    table = load.table
    script = wh.bronze_script(load, wh.table_columns(table), run)
    parts = load.parts if all(p.rows is not None for p in load.parts) else ()
    try:
        run_script(wh, script, expected=expected_rows, mismatch=bronze_mismatch(table), parts=parts)
    except DataError:
        raise
    except WarehouseError as exc:
        raise exc.prefixed(f"loading {table} failed: ", "; bronze left unchanged") from exc
    return expected_rows


def iter_statements(script: str) -> Iterator[str]:
    """Split a migration script on ``;`` at line ends (our files keep one statement each)."""
    for chunk in re.split(r";\s*(?:\n|$)", script):
        body = "\n".join(
            line for line in chunk.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            yield body
