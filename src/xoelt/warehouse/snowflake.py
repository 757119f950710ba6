"""The production warehouse: Snowflake, through snowflake-connector-python.

SQL is already in Snowflake's dialect and runs unchanged. Bronze loads follow DESIGN.md: all
DDL first (it would commit an open transaction), then ``BEGIN; TRUNCATE; COPY INTO … FORCE``,
reconcile COPY's per-file answer with the extracted row count, and ``COMMIT`` — or ``ROLLBACK``
explicitly, because a failed statement does not end a Snowflake transaction.

The COPY names the staged file with ``FILES = ('<key>')`` rather than a path after the stage
name: a stage path is a prefix (``…/x.csv`` would also load ``…/x.csv.tmp``), and fakesnow
cannot parse a path after a stage name at all.

Known limit of the production COPY: Snowflake ignores ``ERROR_ON_COLUMN_COUNT_MISMATCH`` in a
COPY with a transformation (``SELECT $1 …``), so a row with too many fields loads its first
fields and a row with too few loads NULLs. The row-count reconciliation does not catch that.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from xoelt.errors import LoadError
from xoelt.retry import retry_transient
from xoelt.warehouse.base import (
    METADATA_COLUMNS,
    METADATA_NAMES,
    BronzeLoad,
    Capabilities,
    TableRef,
    literal,
    quote,
)

COPY_SUFFIX = "__XO_COPY"
"""Suffix of the helper table the emulator mode (``copy_transformations=False``) COPYs into."""

_IDENT = r'"[A-Za-z_][A-Za-z0-9_$]*"'
_STAGE = re.compile(rf"^@{_IDENT}\.{_IDENT}\.{_IDENT}$")

# The files are written by Python's csv module: ``,`` delimiter, ``"`` quoting with doubled
# quotes, ``\r\n`` line ends (Snowflake's default record delimiter accepts them), UTF-8.
# Backslashes are data, so no escape character; an empty unquoted field is NULL (as DuckDB
# reads it); NULL_IF = () stops the default ``\N`` from turning a real value into NULL.
CSV_FORMAT = (
    "TYPE = 'CSV' FIELD_DELIMITER = ',' SKIP_HEADER = 1 FIELD_OPTIONALLY_ENCLOSED_BY = '\"' "
    "ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE EMPTY_FIELD_AS_NULL = TRUE NULL_IF = () "
    "ENCODING = 'UTF8'"
)
# fakesnow accepts only these keys. No SKIP_HEADER on purpose: with the header skipped,
# fakesnow's reader sniffs column types (ISO timestamps and numbers come back reformatted) and
# fails on a header-only file; reading the header as a row keeps every column text.
EMULATOR_CSV_FORMAT = "TYPE = 'CSV' FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '\"'"
COPY_OPTIONS = "FORCE = TRUE ON_ERROR = ABORT_STATEMENT"


class RowCountMismatch(LoadError):
    """Bronze would not hold exactly the extracted rows; the load was rolled back."""


@dataclass(frozen=True)
class CopyOutcome:
    """What a COPY INTO reported: files processed and rows loaded (summed over files)."""

    files: int
    rows_loaded: int


def split_location(file_uri: str) -> tuple[str, str]:
    """``@"DB"."SCHEMA"."STAGE"/path/to/file.csv`` → (stage, path within the stage)."""
    stage, _, path = file_uri.partition("/")
    if not _STAGE.match(stage) or not path or path.endswith("/") or not path.isprintable():
        raise ValueError(f"not a staged file location: {file_uri!r}")
    return stage, path


def copy_outcome(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> CopyOutcome:
    """Read COPY's answer: one row per file, or the single "0 files processed" status row.

    A file whose status is not LOADED is an error (with ON_ERROR = ABORT_STATEMENT Snowflake
    raises instead, but a "success" that dropped rows must never pass).
    """
    names = [c.lower() for c in columns]
    if "rows_loaded" not in names:
        return CopyOutcome(0, 0)
    loaded = 0
    for row in rows:
        rec = dict(zip(names, row, strict=True))
        status = str(rec.get("status", "")).upper()
        if status != "LOADED":
            raise LoadError(
                f"COPY {status or 'failed'} for {rec.get('file')}: {rec.get('first_error')}"
            )
        loaded += int(rec["rows_loaded"])
    return CopyOutcome(len(rows), loaded)


def check_counts(table: TableRef, expected: int, loaded: int, *, files: int = 1) -> None:
    """Fail unless the load put exactly the extracted rows in bronze."""
    if loaded != expected or (files == 0 and expected > 0):
        where = " (COPY found no staged file)" if files == 0 else ""
        raise RowCountMismatch(
            f"row count mismatch for {table}: extracted {expected}, loaded {loaded}{where}; "
            "bronze left unchanged"
        )


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: network faults, Snowflake's retryable HTTP answers, OperationalError."""
    from snowflake.connector import errors

    if isinstance(exc, errors.NonRetryableTlsError):
        return False
    return isinstance(
        exc,
        (
            errors.OperationalError,
            errors.InternalServerError,
            errors.ServiceUnavailableError,
            errors.GatewayTimeoutError,
            errors.BadGatewayError,
            errors.RequestTimeoutError,
            errors.TooManyRequests,
            errors.OtherHTTPRetryableError,
        ),
    )


def to_load_error(exc: BaseException, prefix: str = "Snowflake") -> LoadError:
    """A connector error as a one-line LoadError (the connector's message, never credentials)."""
    message = " ".join(str(getattr(exc, "msg", None) or exc).split())
    if len(message) > 500:
        message = message[:497] + "..."
    return LoadError(f"{prefix}: {message}", transient=is_transient(exc))


class SnowflakeWarehouse:
    """One Snowflake session; ``default_database`` is the session's database.

    ``copy_transformations=False`` is an emulator mode for fakesnow, which cannot run COPY
    transformations; see :meth:`render_bronze_load`. Never use it against real Snowflake.
    """

    capabilities = Capabilities(
        dialect="snowflake",
        transactional_ddl=False,
        copy_from_stage=True,
        merge_rejects_duplicate_keys=True,
    )

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        default_database: str,
        *,
        copy_transformations: bool = True,
    ) -> None:
        import snowflake.connector

        self.account = str(connect_kwargs.get("account", ""))
        self.default_database = default_database
        self.copy_transformations = copy_transformations

        def connect() -> Any:
            try:
                return snowflake.connector.connect(**connect_kwargs)
            except snowflake.connector.errors.Error as exc:
                raise to_load_error(
                    exc, f"cannot connect to Snowflake account {self.account}"
                ) from exc

        self.con: Any = retry_transient(connect, what=f"connect to {self.account}")
        try:
            self.execute(f"USE DATABASE {quote(default_database)}")
        except BaseException:
            self.close()
            raise

    def path_of(self, database: str) -> str:
        """Where the database lives, for messages: the account, never credentials."""
        return f"snowflake://{self.account}/{database}"

    # -- statements -------------------------------------------------------------------------

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement; return its column names and rows."""
        from snowflake.connector.errors import Error

        try:
            with self.con.cursor() as cur:
                cur.execute(sql)
                names = [d[0] for d in cur.description or []]
                rows = [tuple(r) for r in cur.fetchall()] if names else []
        except Error as exc:
            raise to_load_error(exc) from exc
        return names, rows

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement (Snowflake dialect, unchanged) and return its rows."""
        return self.query(sql)[1]

    @contextlib.contextmanager
    def transaction(self) -> Generator[None]:
        """BEGIN … COMMIT; an explicit ROLLBACK on any error."""
        self.execute("BEGIN")
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            # Snowflake keeps a transaction open after a failed statement: end it explicitly.
            with contextlib.suppress(Exception):
                self.execute("ROLLBACK")
            raise

    def table_columns(self, table: TableRef) -> list[str] | None:
        """Column names in ordinal order, or None if the table does not exist."""
        rows = self.execute(
            f"SELECT column_name FROM {quote(table.database)}.information_schema.columns "
            f"WHERE table_schema = {literal(table.schema)} AND table_name = {literal(table.name)} "
            "ORDER BY ordinal_position"
        )
        return [r[0] for r in rows] or None

    def count(self, table: TableRef) -> int:
        """Rows in ``table``."""
        return int(self.execute(f"SELECT COUNT(*) FROM {table.sql}")[0][0])

    # -- bronze -----------------------------------------------------------------------------

    @staticmethod
    def render_bronze_load(
        load: BronzeLoad,
        columns: Sequence[str] | None = None,
        *,
        copy_transformations: bool = True,
        existing: Sequence[str] | None = None,
    ) -> list[str]:
        """The statements a bronze load runs; ``{run_id}``/``{loaded_at}`` are filled at run time.

        ``columns`` is bronze's source columns after this load (default: the file's);
        ``existing`` is every column bronze has now (None: unknown or no table), from which
        the ``ALTER TABLE … ADD COLUMN`` statements are derived. Columns missing from today's
        file are left out of the column list, so they load as NULL.

        With ``copy_transformations=False`` (emulator mode, for fakesnow) the file is COPYed
        as plain text, header row included, into a helper table, and bronze is filled from it
        with ``ROW_NUMBER() OVER ()`` giving the file row number (and marking the header as
        row 1). That relies on the helper's rows coming back in insertion order, which holds
        on the emulator only; Snowflake does not promise it (and wants an ORDER BY in
        ROW_NUMBER), which is why production uses ``METADATA$FILE_ROW_NUMBER``.
        """
        table = load.table
        file_cols = list(load.columns)
        cols = list(columns if columns is not None else file_cols)
        if not set(file_cols) <= set(cols):
            raise ValueError("columns must include every column of the staged file")
        stage, path = split_location(load.file_uri)
        ddl = [
            f"CREATE SCHEMA IF NOT EXISTS {table.schema_sql}",
            f"CREATE TABLE IF NOT EXISTS {table.sql} ("
            + ", ".join([f"{quote(c)} VARCHAR" for c in cols])
            + ", "
            + ", ".join(f"{quote(n)} {t}" for n, t in METADATA_COLUMNS)
            + ")",
        ]
        if existing is not None:
            wanted = [(c, "VARCHAR") for c in cols] + list(METADATA_COLUMNS)
            ddl += [
                f"ALTER TABLE {table.sql} ADD COLUMN {quote(n)} {t}"
                for n, t in wanted
                if n not in existing
            ]
        target = ", ".join(quote(c) for c in [*file_cols, *METADATA_NAMES])

        def metadata(source_file: str, row_number: str) -> str:
            return ", ".join(
                [
                    "{run_id}",
                    source_file,
                    row_number,
                    "{loaded_at}::TIMESTAMP_TZ",
                    f"{literal(load.window_start)}::TIMESTAMP_TZ",
                    f"{literal(load.window_end)}::TIMESTAMP_TZ",
                ]
            )

        files = f"FILES = ({literal(path)})"
        if copy_transformations:
            fields = ", ".join(f"${i}" for i in range(1, len(file_cols) + 1))
            select = f"{fields}, {metadata('METADATA$FILENAME', 'METADATA$FILE_ROW_NUMBER')}"
            return [
                *ddl,
                "BEGIN",
                f"TRUNCATE TABLE {table.sql}",
                f"COPY INTO {table.sql} ({target}) FROM (SELECT {select} FROM {stage}) "
                f"{files} FILE_FORMAT = ({CSV_FORMAT}) {COPY_OPTIONS}",
                "COMMIT",
            ]

        helper = table.with_name(table.name + COPY_SUFFIX)
        source = ", ".join(quote(c) for c in file_cols)
        row = quote("_XO_COPY_ROW")
        return [
            *ddl,
            f"CREATE OR REPLACE TABLE {helper.sql} ("
            + ", ".join(f"{quote(c)} VARCHAR" for c in file_cols)
            + ")",
            "BEGIN",
            f"TRUNCATE TABLE {table.sql}",
            f"COPY INTO {helper.sql} ({source}) FROM {stage} "
            f"{files} FILE_FORMAT = ({EMULATOR_CSV_FORMAT}) {COPY_OPTIONS}",
            # METADATA$FILENAME would be the path within the stage: write the same.
            f"INSERT INTO {table.sql} ({target}) SELECT {source}, "
            f"{metadata(literal(path), f'{row} - 1')} FROM (SELECT *, ROW_NUMBER() OVER () AS {row} "
            f"FROM {helper.sql}) WHERE {row} > 1",
            "COMMIT",
            f"DROP TABLE IF EXISTS {helper.sql}",
        ]

    def load_bronze(self, load: BronzeLoad, run_id: str, loaded_at: str, expected_rows: int) -> int:
        """Replace bronze with the staged file's rows in one transaction, reconciled."""
        existing = self.table_columns(load.table)
        source = [c for c in existing or [] if c not in METADATA_NAMES]
        columns = source + [c for c in load.columns if c not in source]
        stmts = [
            s.replace("{run_id}", literal(run_id)).replace("{loaded_at}", literal(loaded_at))
            for s in self.render_bronze_load(
                load,
                columns,
                copy_transformations=self.copy_transformations,
                existing=existing,
            )
        ]
        begin, commit = stmts.index("BEGIN"), stmts.index("COMMIT")
        for stmt in stmts[:begin]:
            self.execute(stmt)
        in_bronze = 0
        try:
            with self.transaction():
                copied: CopyOutcome | None = None
                inserted: int | None = None
                for stmt in stmts[begin + 1 : commit]:
                    names, rows = self.query(stmt)
                    if stmt.startswith("COPY INTO"):
                        copied = copy_outcome(names, rows)
                    elif stmt.startswith("INSERT INTO"):
                        inserted = int(rows[0][0]) if rows else 0
                if copied is None:
                    raise LoadError("the rendered load has no COPY INTO")
                if inserted is None:
                    check_counts(load.table, expected_rows, copied.rows_loaded, files=copied.files)
                else:
                    # Emulator mode: the header row was COPYed as data and dropped by the INSERT.
                    check_counts(load.table, expected_rows, inserted, files=copied.files)
                    if copied.rows_loaded != inserted + 1:
                        raise RowCountMismatch(
                            f"COPY loaded {copied.rows_loaded} lines for {load.table} but "
                            f"{inserted} rows reached bronze; bronze left unchanged"
                        )
                in_bronze = self.count(load.table)
                check_counts(load.table, expected_rows, in_bronze)
        except RowCountMismatch:
            raise
        except LoadError as exc:
            raise LoadError(
                f"loading {load.table} failed: {exc.message}; bronze left unchanged",
                transient=exc.transient,
            ) from exc
        finally:
            for stmt in stmts[commit + 1 :]:
                with contextlib.suppress(LoadError):
                    self.execute(stmt)
        return in_bronze

    def close(self) -> None:
        """End the session (errors on the way out are not worth reporting)."""
        with contextlib.suppress(Exception):
            self.con.close()
