"""The embedded warehouse: DuckDB, one attached database file per Snowflake database.

SQL arrives in Snowflake's dialect and is translated with sqlglot; the few functions sqlglot
leaves untranslated get DuckDB macros. Bronze loads read the staged CSV with ``read_csv``
(explicit delimiter, quote, escape, header and column list; every column VARCHAR), keeping
xoelt's CSV convention (:mod:`xoelt.sources.csvio`): an empty unquoted field is NULL and a
quoted one (``""``) an empty string (``allow_quoted_nulls = false``; DuckDB's default reads
both as NULL). ``strict_mode`` fails a row with more or fewer fields than the header.

A window's parts are read by one ``read_csv([...])`` (``compression`` explicit; with several,
``filename`` says which part each row came from, for the per-part reconciliation, and a
part's row number is ``rowid`` past the rows of the parts before it).

Why bronze loads go through a shadow table: DuckDB's CSV reader has no file-row-number
column, and ``ROW_NUMBER() OVER ()`` serialises the insert (about 1.9x slower on 10 M rows).
Rows inserted into a fresh, committed table get ``rowid`` 0..n-1 in file order (insertion
order is preserved; rows of a table created inside an open transaction do not), so the
shadow is filled in autocommit, ``_XO_FILE_ROW_NUMBER`` set from ``rowid``, and the shadow
swapped in with ``DROP`` + ``RENAME`` inside one transaction. DuckDB's DDL is transactional,
so readers see either yesterday's bronze or today's, never a mix, and a failure before the
swap leaves bronze untouched (the shadow is dropped).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from xoelt.config.types import StrictModel
from xoelt.errors import WarehouseError
from xoelt.interrupts import Interrupted
from xoelt.warehouse.base import (
    METADATA_COLUMNS,
    METADATA_NAMES,
    Answer,
    BronzeLoad,
    Capabilities,
    Count,
    RunStamp,
    Script,
    Step,
    TableRef,
    Yields,
    ddl,
    quote,
    rejected_count,
)

SHADOW_SUFFIX = "__XO_LOAD"
PART_COLUMN = "_XO_PART"  # read_csv's column naming the part a row came from

CAPABILITIES = Capabilities(
    dialect="duckdb",
    transactional_ddl=True,
    copy_transformations=True,  # read_csv inside a SELECT: any expression per column
    # one process holds a DuckDB file's write lock: a backfill's windows run one at a time
    concurrent_windows=False,
)

# Snowflake functions sqlglot passes through unchanged; same semantics on VARCHAR input.
MACROS = (
    "CREATE OR REPLACE TEMP MACRO try_to_timestamp(x) AS TRY_CAST(x AS TIMESTAMP)",
    "CREATE OR REPLACE TEMP MACRO try_to_timestamp_ntz(x) AS TRY_CAST(x AS TIMESTAMP)",
    "CREATE OR REPLACE TEMP MACRO try_to_timestamp_tz(x) AS TRY_CAST(x AS TIMESTAMPTZ)",
    "CREATE OR REPLACE TEMP MACRO to_timestamp_ntz(x) AS CAST(x AS TIMESTAMP)",
    "CREATE OR REPLACE TEMP MACRO to_timestamp_tz(x) AS CAST(x AS TIMESTAMPTZ)",
)
TYPES = {"TIMESTAMP_TZ": "TIMESTAMPTZ", "NUMBER(38,0)": "BIGINT", "VARCHAR": "VARCHAR"}


class DuckDBConfig(StrictModel):
    """The embedded warehouse: ``<directory>/<DATABASE>.duckdb`` files."""

    type: Literal["duckdb"] = "duckdb"
    directory: str

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def open(
        self,
        databases: Sequence[str],
        default_database: str,
        env: Mapping[str, str],
        read_only: Sequence[str] = (),
    ) -> DuckDBWarehouse:
        """Attach one file per database (created on first use); ``read_only`` databases
        (other pipelines' gold that this one reads) only if their file exists."""
        return DuckDBWarehouse(Path(self.directory), databases, default_database, read_only)

    def location(self, database: str) -> str:
        return str((Path(self.directory) / f"{database}.duckdb").resolve())

    def bronze_script(
        self, load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None
    ) -> Script:
        """The bronze load this engine runs (``plan`` renders it with no connection)."""
        return bronze_script(load, existing, run)


@functools.lru_cache(maxsize=512)
def to_duckdb(sql: str) -> str:
    """Translate one Snowflake statement to DuckDB's dialect.

    Snowflake's INT, INTEGER, BIGINT, SMALLINT, TINYINT and BYTEINT are all NUMBER(38, 0);
    sqlglot maps them to DuckDB's 32/64/16/8-bit integers, where a value Snowflake keeps
    (3,000,000,000 in an INTEGER column) would not convert. They become DECIMAL(38, 0), so a
    typed silver column holds on DuckDB exactly what it holds on Snowflake.
    """
    import sqlglot
    from sqlglot import exp

    whole = {
        exp.DataType.Type.INT,
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.SMALLINT,
        exp.DataType.Type.TINYINT,
    }

    def number(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.DataType) and node.this in whole:
            return exp.DataType.build("DECIMAL(38, 0)")
        return node

    tree = sqlglot.parse_one(sql, read="snowflake")
    return tree.transform(number).sql(dialect="duckdb")


def duckdb_literal(text: str) -> str:
    """A string literal in DuckDB's own SQL (for ``native`` statements): quotes doubled and
    nothing else; a backslash is an ordinary character there (``literal`` doubles it, the
    Snowflake rule sqlglot undoes when it translates)."""
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def _mapped(duckdb: Any) -> Generator[None]:
    """DuckDB's errors as WarehouseError; a statement a signal interrupted (DuckDB raises
    ``RuntimeError: Query interrupted`` around our handler's Interrupted) as that Interrupted."""
    try:
        yield
    except duckdb.Error as exc:
        raise WarehouseError(f"DuckDB: {str(exc).splitlines()[0]}") from exc
    except RuntimeError as exc:
        if isinstance(exc.__context__, Interrupted):
            raise exc.__context__ from None
        raise WarehouseError(f"DuckDB: {str(exc).splitlines()[0]}") from exc


class DuckDBWarehouse:
    """DuckDB files under ``directory``: ``<DATABASE>.duckdb``, attached as ``<DATABASE>``."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        directory: Path,
        databases: Sequence[str],
        default_database: str,
        read_only: Sequence[str] = (),
    ) -> None:
        import duckdb

        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.read_only: set[str] = set()  # attached READ_ONLY: other pipelines' databases
        for db in dict.fromkeys([default_database, *databases]):
            path = directory / f"{db}.duckdb"
            try:
                self.con.execute(f"ATTACH {duckdb_literal(str(path))} AS {quote(db)}")
            except duckdb.Error as exc:
                self.con.close()
                raise WarehouseError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc
        writable = {default_database, *databases}
        for db in dict.fromkeys(d for d in read_only if d not in writable):
            self._attach_read_only(duckdb, db)
        self.con.execute(f"USE {quote(default_database)}")
        for macro in MACROS:
            self.con.execute(macro)
        self._drop_stale_shadows()

    def _attach_read_only(self, duckdb: Any, db: str) -> None:
        """Attach another pipeline's database to read its tables; a missing file is left
        unattached (the gold stage names the table it lacks).

        Read-only, so any number of readers share the file; but DuckDB locks a file per
        process, and one that a process holds read-write cannot be opened by another at all,
        so a run reading ``db`` while that database's pipeline is loading fails here."""
        path = self.directory / f"{db}.duckdb"
        if not path.is_file():
            return
        try:
            self.con.execute(f"ATTACH {duckdb_literal(str(path))} AS {quote(db)} (READ_ONLY)")
        except duckdb.Error as exc:
            self.con.close()
            raise WarehouseError(
                f"cannot open {path} read-only (to read database {db}): "
                f"{str(exc).splitlines()[0]}; is a pipeline of {db} running now?"
            ) from exc
        self.read_only.add(db)

    def _drop_stale_shadows(self) -> None:
        """Drop load shadows (``<TABLE>__XO_LOAD``) a killed process left behind.

        A process that attached the files holds their write lock, so no other load can be
        filling one now: any shadow present was abandoned mid-load (SIGKILL, power loss).
        Bronze itself was never touched by it (the swap is one transaction).
        """
        stale = self.con.execute(
            "SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
            "WHERE ends_with(table_name, ?)",
            [SHADOW_SUFFIX],
        ).fetchall()
        for catalog, schema, name in stale:
            if catalog in self.read_only:  # its own pipeline's process cleans it up
                continue
            self.con.execute(f"DROP TABLE IF EXISTS {quote(catalog)}.{quote(schema)}.{quote(name)}")

    def location(self, database: str) -> str:
        return str((self.directory / f"{database}.duckdb").resolve())

    # -- statements -------------------------------------------------------------------------

    def query(self, sql: str, *, native: bool = False) -> Answer:
        import duckdb
        import sqlglot

        try:
            text = sql if native else to_duckdb(sql)
        except sqlglot.errors.SqlglotError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WarehouseError(f"cannot translate SQL for DuckDB: {first}") from exc
        with _mapped(duckdb):
            cur = self.con.execute(text)
            columns = [d[0] for d in cur.description or []]
            return Answer(columns, cur.fetchall() if columns else [])

    def count_of(self, yields: Yields, answer: Answer) -> Count:
        """DuckDB answers INSERT/UPDATE/DELETE/MERGE with one row of one ``Count`` column."""
        if yields is Yields.REJECTED:
            return rejected_count(answer)
        if yields is Yields.AFFECTED and answer.columns == ["Count"]:
            return Count(int(answer.rows[0][0]))
        raise WarehouseError(f"DuckDB gave no {yields.value} row count ({answer.columns})")

    @contextlib.contextmanager
    def transaction(self) -> Generator[None]:
        self.query("BEGIN TRANSACTION", native=True)
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.query("COMMIT", native=True)

    def table_columns(self, table: TableRef) -> list[str] | None:
        import duckdb

        with _mapped(duckdb):
            rows = self.con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position",
                [table.database, table.schema, table.name],
            ).fetchall()
        return [r[0] for r in rows] or None

    # -- bronze -----------------------------------------------------------------------------

    def bronze_script(
        self, load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None
    ) -> Script:
        """Shadow table filled from the file in autocommit, then swapped in atomically."""
        return bronze_script(load, existing, run)

    def set_query_tag(self, tag: str) -> None:
        """DuckDB has no query history to label: nothing to do."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.execute("CHECKPOINT")
        self.con.close()


def bronze_script(load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None) -> Script:
    """The DuckDB bronze load; at plan time (``run`` None) the run values are placeholders."""
    cols = load.bronze_columns(existing)
    shadow = load.table.with_name(load.table.name + SHADOW_SUFFIX)
    columns_ddl = ", ".join(
        [f"{quote(c)} VARCHAR" for c in cols]
        + [f"{quote(n)} {TYPES[t]}" for n, t in METADATA_COLUMNS]
    )
    csv_columns = "{" + ", ".join(f"{duckdb_literal(c)}: 'VARCHAR'" for c in load.columns) + "}"
    missing = [c for c in cols if c not in load.columns]
    files = load.files
    if len(files) == 1:
        source, source_file = duckdb_literal(load.file_uri), duckdb_literal(load.file_uri)
        part_column = ""
    else:  # one read over every part; each row says which it came from
        source = "[" + ", ".join(duckdb_literal(p.file_uri) for p in files) + "]"
        source_file, part_column = quote(PART_COLUMN), f"filename = {duckdb_literal(PART_COLUMN)}, "
    run_id = "{run_id}" if run is None else duckdb_literal(run.run_id)
    loaded_at = "{loaded_at}" if run is None else duckdb_literal(run.loaded_at)
    select = ", ".join(
        [quote(c) for c in load.columns]
        + [f"NULL AS {quote(c)}" for c in missing]
        + [
            run_id,
            source_file,
            "NULL",
            f"{loaded_at}::TIMESTAMPTZ",
            f"{duckdb_literal(load.window_start)}::TIMESTAMPTZ",
            f"{duckdb_literal(load.window_end)}::TIMESTAMPTZ",
        ]
    )
    target_cols = ", ".join(quote(c) for c in [*load.columns, *missing, *METADATA_NAMES])
    insert = (
        f"INSERT INTO {shadow.sql} ({target_cols}) SELECT {select} FROM read_csv("
        f"{source}, header = true, delim = ',', quote = '\"', escape = '\"', "
        f"all_varchar = true, auto_detect = false, strict_mode = true, allow_quoted_nulls = false, "
        f"compression = '{'gzip' if load.compressed else 'none'}', {part_column}"
        f"columns = {csv_columns})"
    )
    # rowid runs over all parts in order (read in list order, insertion order kept): a
    # part's row number is rowid past the rows of the parts before it.
    row_number = "rowid + 1"
    if len(files) > 1 and all(p.rows is not None for p in files):
        before, whens = 0, []
        for part in files:
            whens.append(f"WHEN {duckdb_literal(part.file_uri)} THEN {before}")
            before += part.rows or 0
        row_number += f" - CASE {quote('_XO_SOURCE_FILE')} {' '.join(whens)} END"
    drop_shadow = ddl(f"DROP TABLE IF EXISTS {shadow.sql}")
    return Script(
        prepare=(
            ddl(f"CREATE SCHEMA IF NOT EXISTS {load.table.schema_sql}"),
            drop_shadow,
            ddl(f"CREATE TABLE {shadow.sql} ({columns_ddl})"),
            Step(insert, Yields.AFFECTED, reconcile=0),
            Step(f"UPDATE {shadow.sql} SET {quote('_XO_FILE_ROW_NUMBER')} = {row_number}"),
        ),
        body=(
            ddl(f"DROP TABLE IF EXISTS {load.table.sql}"),
            ddl(f"ALTER TABLE {shadow.sql} RENAME TO {quote(load.table.name)}"),
        ),
        on_failure=(drop_shadow,),
        holds=load.table,
        holds_by="_XO_SOURCE_FILE",
        begin="BEGIN TRANSACTION",
        native=True,
    )
