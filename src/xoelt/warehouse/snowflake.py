"""The production warehouse: Snowflake, through snowflake-connector-python.

SQL is already in Snowflake's dialect and runs unchanged. Bronze loads follow DESIGN.md: all
DDL first (it would commit an open transaction), then ``BEGIN; TRUNCATE; COPY INTO … FORCE``,
reconcile COPY's per-file answer with the extracted row count, and ``COMMIT`` — or ``ROLLBACK``
explicitly, because a failed statement does not end a Snowflake transaction.

One COPY loads every staged part of the window, named with ``FILES = ('<key>', …)`` (with
``COMPRESSION = GZIP`` or ``NONE``) rather than a path or a PATTERN: a stage path is a prefix
(``…/x.csv`` would also load ``…/x.csv.tmp``), a pattern could pick up a stale part, and
fakesnow cannot parse a path after a stage name at all. Snowflake loads the files of one
COPY in parallel and answers one row per file: each is reconciled with its part's count.

The connection settings are :class:`SnowflakeConfig` (``type: snowflake`` in a target); its
``copy_transformations: false`` is an emulator mode for fakesnow, which cannot run
``COPY … FROM (SELECT $1, METADATA$FILENAME …)`` (see :func:`bronze_script`).

Ragged rows: Snowflake ignores ``ERROR_ON_COLUMN_COUNT_MISMATCH`` in a COPY with a
transformation (``SELECT $1 …``), so such a COPY would load a row with too many fields as its
first fields and a row with too few padded with NULLs, and the row count would not notice.
So before it the production load runs a validation pass: a plain COPY (no transformation,
where the option holds) of the file into a temporary table of exactly the header's columns
with ``ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE VALIDATION_MODE = RETURN_ERRORS``, which loads
nothing and answers one row per bad record; any row fails the load before anything changed.
The pass reads the file once more (warehouse time, not xoelt's). The emulator mode's plain
COPY into its helper table fails on a ragged row by itself.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from xoelt.config.types import IDENTIFIER, Identifier, Secret, StrictModel
from xoelt.errors import DataError, WarehouseError
from xoelt.retry import retry_transient
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
    literal,
    quote,
    rejected_count,
)

COPY_SUFFIX = "__XO_COPY"
"""Suffix of the helper table the emulator mode (``copy_transformations=False``) COPYs into."""
CHECK_SUFFIX = "__XO_CHECK"
"""Suffix of the temporary table, exactly the file's columns, that the production load's
column-count validation pass names (VALIDATION_MODE loads nothing into it)."""

_IDENT = r'"[A-Za-z_][A-Za-z0-9_$]*"'
_STAGE = re.compile(rf"^@{_IDENT}\.{_IDENT}\.{_IDENT}$")

# The files follow xoelt's CSV convention (xoelt.sources.csvio): ``,`` delimiter, ``"``
# quoting with doubled quotes, ``\r\n`` line ends (Snowflake's default record delimiter
# accepts them), UTF-8. Backslashes are data, so no escape character. An empty unquoted field
# is a missing value: EMPTY_FIELD_AS_NULL = TRUE loads it as NULL, while a quoted empty field
# (``""``) loads as an empty string (FIELD_OPTIONALLY_ENCLOSED_BY); NULL_IF = () stops the
# default ``\N`` from turning a real value into NULL.
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
MAX_QUERY_TAG = 2000
MAX_COPY_FILES = 1000  # Snowflake's limit on a COPY's FILES list
# The validation pass: no transformation, so the column count is checked (default TRUE, said
# anyway); RETURN_ERRORS loads nothing and answers every bad record.
CHECK_OPTIONS = "ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE"


def capabilities(*, copy_transformations: bool) -> Capabilities:
    """Snowflake's: DDL commits an open transaction; many sessions may load at once."""
    return Capabilities(
        dialect="snowflake",
        transactional_ddl=False,
        copy_transformations=copy_transformations,
        concurrent_windows=True,
    )


class SnowflakeConfig(StrictModel):
    """A Snowflake account and how to reach it. Credentials are ``${VAR}`` references.

    ``stage`` is an external stage (``DB.SCHEMA.NAME``) whose URL is the stage bucket
    (``s3://<globals.storage.stage_bucket>/``), created once by whoever owns the account with
    a storage integration; COPY INTO reads the staged files through it.

    Every call is bounded (seconds): ``socket_timeout`` is each HTTP request's connect and
    read timeout; the connector retries a failed request (HTTP 5xx, 429, timeouts) until
    ``login_timeout`` (connecting) or ``network_timeout`` (any other request) has passed,
    where it would otherwise retry forever; ``statement_timeout`` is the session's
    ``STATEMENT_TIMEOUT_IN_SECONDS``, after which Snowflake cancels a statement. Connecting is
    retried only while ``login_timeout`` lasts. The connector's sleeps between retries are
    capped at a quarter of the tightest of these budgets, so one sleep cannot outlast them. ``query_tags: false`` is for emulators
    (fakesnow) that cannot ``ALTER SESSION SET QUERY_TAG``.
    """

    type: Literal["snowflake"]
    account: str
    user: str
    password: Secret | None = None
    private_key_file: str | None = None
    role: Identifier | None = None
    warehouse: Identifier | None = None
    stage: str
    host: str | None = None
    port: int | None = None
    protocol: Literal["https", "http"] | None = None
    copy_transformations: bool = True
    query_tags: bool = True
    login_timeout: int = Field(60, ge=1)
    network_timeout: int = Field(300, ge=1)
    socket_timeout: int = Field(120, ge=1)
    statement_timeout: int = Field(3600, ge=1)

    @field_validator("stage")
    @classmethod
    def _qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 3 or not all(IDENTIFIER.match(p) for p in parts):
            raise ValueError(f"{value!r} must be a qualified stage name DATABASE.SCHEMA.STAGE")
        return ".".join(p.upper() for p in parts)

    @model_validator(mode="after")
    def _one_credential(self) -> SnowflakeConfig:
        if (self.password is None) == (self.private_key_file is None):
            raise ValueError("set exactly one of password (a ${VAR}) or private_key_file")
        return self

    @property
    def capabilities(self) -> Capabilities:
        return capabilities(copy_transformations=self.copy_transformations)

    def file_location(self, key: str) -> str:
        """How COPY INTO reads a staged file: ``@"DB"."SCHEMA"."STAGE"/<key>``."""
        return "@" + ".".join(f'"{p}"' for p in self.stage.split(".")) + "/" + key

    def location(self, database: str) -> str:
        """Where the database lives, for messages: the account, never credentials."""
        return f"snowflake://{self.account}/{database}"

    def connect_kwargs(self, env: Mapping[str, str]) -> dict[str, Any]:
        """Arguments for ``snowflake.connector.connect``; secrets resolved here, at use."""
        kwargs: dict[str, Any] = {
            "account": self.account,
            "user": self.user,
            "login_timeout": self.login_timeout,
            "network_timeout": self.network_timeout,
            "socket_timeout": self.socket_timeout,
            "application": "xoelt",
            "backoff_policy": self._backoff_policy(),
            "session_parameters": {
                "TIMEZONE": "UTC",
                "QUERY_TAG": "xoelt",
                "STATEMENT_TIMEOUT_IN_SECONDS": self.statement_timeout,
            },
        }
        if self.password is not None:
            kwargs["password"] = self.password.resolve(env).get_secret_value()
        if self.private_key_file:
            kwargs["private_key_file"] = self.private_key_file
        for key in ("role", "warehouse", "host", "port", "protocol"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs

    def _backoff_policy(self) -> Any:
        """The connector's full-jitter exponential backoff, capped at a quarter of the
        tightest budget (at least 1 s, at most the connector's own 16 s cap).

        The connector checks its budget before a sleep, never during one, and its default
        policy may draw 8 s or more after a few retries: with a 3 s ``statement_timeout`` a
        single sleep could triple the time a failing statement takes to fail."""
        from snowflake.connector.backoff_policies import exponential_backoff

        budget = min(self.login_timeout, self.network_timeout, self.statement_timeout)
        return exponential_backoff(cap=min(16, max(1, budget // 4)))

    def bronze_script(
        self, load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None
    ) -> Script:
        """The bronze load this engine runs (``plan`` renders it with no connection)."""
        return bronze_script(load, existing, run, copy_transformations=self.copy_transformations)

    def open(
        self,
        databases: Sequence[str],
        default_database: str,
        env: Mapping[str, str],
        read_only: Sequence[str] = (),
    ) -> SnowflakeWarehouse:
        """Connect (retrying transient failures); the session's database is the default.

        One session reaches every database the role may use, so ``databases`` and
        ``read_only`` (those other pipelines' gold reads) need no opening here."""
        return SnowflakeWarehouse(
            self.connect_kwargs(env),
            default_database,
            copy_transformations=self.copy_transformations,
            query_tags=self.query_tags,
            statement_timeout=self.statement_timeout,
        )


@dataclass(frozen=True)
class CopyOutcome:
    """What a COPY INTO reported: files processed and rows loaded (summed over files), and
    each file's rows loaded, by the name COPY gives it."""

    files: int
    rows_loaded: int
    by_file: tuple[tuple[str, int], ...] = ()

    @property
    def count(self) -> Count:
        note = "" if self.files else " (COPY found no staged file)"
        return Count(self.rows_loaded, note, self.by_file)


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
    by_file: list[tuple[str, int]] = []
    for row in rows:
        rec = dict(zip(names, row, strict=True))
        status = str(rec.get("status", "")).upper()
        if status != "LOADED":
            raise WarehouseError(
                f"COPY {status or 'failed'} for {rec.get('file')}: {rec.get('first_error')}"
            )
        by_file.append((str(rec.get("file")), int(rec["rows_loaded"])))
    return CopyOutcome(len(rows), sum(n for _, n in by_file), tuple(by_file))


# Snowflake answers DML with one row of named counts.
_AFFECTED = ("number of rows inserted", "number of rows updated", "number of rows deleted")


def affected_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Rows a DML statement touched, from the named count columns of its answer."""
    names = [c.lower() for c in columns]
    wanted = [i for i, name in enumerate(names) if name in _AFFECTED]
    if not wanted or not rows:
        raise WarehouseError(f"Snowflake gave no affected-row count ({list(columns)})")
    return sum(int(rows[0][i]) for i in wanted)


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


def _quiet_in_cancel_timer(
    connection: Any, cursor: Any, error_class: Any, error_value: dict[str, Any]
) -> None:
    """The connector's error handler, except in its statement-timeout thread.

    When a statement's timeout passes, the connector sends a cancel from a timer thread; if
    the endpoint is down that fails too and the thread dies with a traceback on stderr.
    The statement itself fails in the main thread and says why: the cancel's failure is
    dropped.
    """
    import threading

    from snowflake.connector.errors import Error

    if isinstance(threading.current_thread(), threading.Timer):
        return
    Error.default_errorhandler(connection, cursor, error_class, error_value)


def to_warehouse_error(exc: BaseException, prefix: str = "Snowflake") -> WarehouseError:
    """A connector error as a one-line WarehouseError (its message, never credentials)."""
    message = " ".join(str(getattr(exc, "msg", None) or exc).split())
    if len(message) > 500:
        message = message[:497] + "..."
    return WarehouseError(f"{prefix}: {message}", transient=is_transient(exc))


class SnowflakeWarehouse:
    """One Snowflake session; ``default_database`` is the session's database.

    ``copy_transformations=False`` is an emulator mode for fakesnow, which cannot run COPY
    transformations; see :func:`bronze_script`. Never use it against real Snowflake.
    """

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        default_database: str,
        *,
        copy_transformations: bool = True,
        query_tags: bool = True,
        statement_timeout: int | None = None,
    ) -> None:
        import snowflake.connector

        self.account = str(connect_kwargs.get("account", ""))
        self.default_database = default_database
        self.capabilities = capabilities(copy_transformations=copy_transformations)
        self.query_tags = query_tags
        self.statement_timeout = statement_timeout

        def connect() -> Any:
            try:
                con = snowflake.connector.connect(**connect_kwargs)
                con.errorhandler = _quiet_in_cancel_timer
                return con
            except snowflake.connector.errors.Error as exc:
                raise to_warehouse_error(
                    exc, f"cannot connect to Snowflake account {self.account}"
                ) from exc

        # The connector already retries within login_timeout; retry the whole connect only
        # while that lasts, so a dead endpoint fails in about login_timeout, not three times.
        self.con: Any = retry_transient(
            connect,
            what=f"connect to {self.account}",
            budget=float(connect_kwargs.get("login_timeout") or 60),
        )
        try:
            self.query(f"USE DATABASE {quote(default_database)}")
        except BaseException:
            self.close()
            raise

    def location(self, database: str) -> str:
        """Where the database lives, for messages: the account, never credentials."""
        return f"snowflake://{self.account}/{database}"

    # -- statements -------------------------------------------------------------------------

    def query(self, sql: str, *, native: bool = False) -> Answer:
        """Run one statement (Snowflake's dialect is the native one); columns and rows."""
        from snowflake.connector.errors import Error

        try:
            with self.con.cursor() as cur:
                # the client's bound on the statement, its request retries included (without
                # one the connector retries a 5xx for network_timeout, or forever)
                cur.execute(sql, timeout=self.statement_timeout)
                names = [d[0] for d in cur.description or []]
                rows = [tuple(r) for r in cur.fetchall()] if names else []
        except Error as exc:
            raise to_warehouse_error(exc) from exc
        return Answer(names, rows)

    def count_of(self, yields: Yields, answer: Answer) -> Count:
        if yields is Yields.REJECTED:  # VALIDATION_MODE = RETURN_ERRORS: a row per error
            return rejected_count(answer)
        if yields is Yields.COPIED:
            return copy_outcome(answer.columns, answer.rows).count
        return Count(affected_rows(answer.columns, answer.rows))

    @contextlib.contextmanager
    def transaction(self) -> Generator[None]:
        """BEGIN … COMMIT; an explicit ROLLBACK on any error."""
        self.query("BEGIN")
        try:
            yield
            self.query("COMMIT")
        except BaseException:
            # Snowflake keeps a transaction open after a failed statement: end it explicitly.
            with contextlib.suppress(Exception):
                self.query("ROLLBACK")
            raise

    def table_columns(self, table: TableRef) -> list[str] | None:
        """Column names in ordinal order, or None if the table does not exist."""
        rows = self.query(
            f"SELECT column_name FROM {quote(table.database)}.information_schema.columns "
            f"WHERE table_schema = {literal(table.schema)} AND table_name = {literal(table.name)} "
            "ORDER BY ordinal_position"
        ).rows
        return [r[0] for r in rows] or None

    def bronze_script(
        self, load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None
    ) -> Script:
        return bronze_script(
            load, existing, run, copy_transformations=self.capabilities.copy_transformations
        )

    def set_query_tag(self, tag: str) -> None:
        """``ALTER SESSION SET QUERY_TAG``: Snowflake's query history shows ``tag`` on every
        statement that follows (the session parameter holds at most 2,000 characters)."""
        if self.query_tags:
            self.query(f"ALTER SESSION SET QUERY_TAG = {literal(tag[:MAX_QUERY_TAG])}")

    def close(self) -> None:
        """End the session (errors on the way out are not worth reporting)."""
        with contextlib.suppress(Exception):
            self.con.close()


def bronze_script(
    load: BronzeLoad,
    existing: Sequence[str] | None,
    run: RunStamp | None,
    *,
    copy_transformations: bool = True,
) -> Script:
    """All DDL first, then ``BEGIN; TRUNCATE; COPY INTO … FORCE``, reconciled, ``COMMIT``.

    ``existing`` is every column bronze has now (None: unknown or no table), from which the
    ``ALTER TABLE … ADD COLUMN`` statements are derived. Columns missing from today's file are
    left out of the column list, so they load as NULL. At plan time (``run`` None) the run id
    and load time are rendered as ``{run_id}``/``{loaded_at}``.

    With ``copy_transformations=False`` (emulator mode, for fakesnow) the file is COPYed as
    plain text, header row included, into a helper table, and bronze is filled from it with
    ``ROW_NUMBER() OVER ()`` giving the file row number (and marking the header as row 1).
    With several parts, fakesnow COPYs them one after the other: each part's header is then
    at a row the manifest's counts place, which tells the INSERT the part and its row number
    (a wrong count fails the per-part reconciliation anyway).
    That relies on the helper's rows coming back in insertion order, which holds on the
    emulator only; Snowflake does not promise it (and wants an ORDER BY in ROW_NUMBER), which
    is why production uses ``METADATA$FILE_ROW_NUMBER``.
    """
    table = load.table
    file_cols = list(load.columns)
    cols = load.bronze_columns(existing)
    located = [split_location(part.file_uri) for part in load.files]
    stage = located[0][0]
    if any(where != stage for where, _ in located):
        raise ValueError(f"the parts of one load are in one stage, not {located}")
    paths = [path for _, path in located]
    if len(paths) > MAX_COPY_FILES:
        raise DataError(
            f"{len(paths)} staged parts: one COPY names at most {MAX_COPY_FILES:,} files; "
            "raise the source's output.part_size"
        )
    prepare = [
        ddl(f"CREATE SCHEMA IF NOT EXISTS {table.schema_sql}"),
        ddl(
            f"CREATE TABLE IF NOT EXISTS {table.sql} ("
            + ", ".join([f"{quote(c)} VARCHAR" for c in cols])
            + ", "
            + ", ".join(f"{quote(n)} {t}" for n, t in METADATA_COLUMNS)
            + ")"
        ),
    ]
    if existing is not None:
        wanted = [(c, "VARCHAR") for c in cols] + list(METADATA_COLUMNS)
        prepare += [
            ddl(f"ALTER TABLE {table.sql} ADD COLUMN {quote(n)} {t}")
            for n, t in wanted
            if n not in existing
        ]
    target = ", ".join(quote(c) for c in [*file_cols, *METADATA_NAMES])
    run_id = "{run_id}" if run is None else literal(run.run_id)
    loaded_at = "{loaded_at}" if run is None else literal(run.loaded_at)

    def metadata(source_file: str, row_number: str) -> str:
        return ", ".join(
            [
                run_id,
                source_file,
                row_number,
                f"{loaded_at}::TIMESTAMP_TZ",
                f"{literal(load.window_start)}::TIMESTAMP_TZ",
                f"{literal(load.window_end)}::TIMESTAMP_TZ",
            ]
        )

    # One COPY over every part: Snowflake loads the files in parallel. FILES, not PATTERN:
    # exactly the parts stage recorded, never a stale one from an earlier run.
    files = f"FILES = ({', '.join(literal(p) for p in paths)})"
    compression = f"COMPRESSION = {'GZIP' if load.compressed else 'NONE'}"
    described = paths[0] if len(paths) == 1 else f"the {len(paths)} parts of {paths[0]}…"
    truncate = Step(f"TRUNCATE TABLE {table.sql}")
    if copy_transformations:
        check = table.with_name(table.name + CHECK_SUFFIX)
        validate = [
            ddl(
                f"CREATE OR REPLACE TEMPORARY TABLE {check.sql} ("
                + ", ".join(f"{quote(c)} VARCHAR" for c in file_cols)
                + ")"
            ),
            Step(
                f"COPY INTO {check.sql} FROM {stage} {files} "
                f"FILE_FORMAT = ({CSV_FORMAT} {compression} {CHECK_OPTIONS}) "
                "VALIDATION_MODE = RETURN_ERRORS",
                Yields.REJECTED,
                rejects=f"row(s) of {described} with more or fewer fields than its header "
                f"({len(file_cols)})",
            ),
        ]
        fields = ", ".join(f"${i}" for i in range(1, len(file_cols) + 1))
        select = f"{fields}, {metadata('METADATA$FILENAME', 'METADATA$FILE_ROW_NUMBER')}"
        copy = (
            f"COPY INTO {table.sql} ({target}) FROM (SELECT {select} FROM {stage}) "
            f"{files} FILE_FORMAT = ({CSV_FORMAT} {compression}) {COPY_OPTIONS}"
        )
        # The check runs first: a ragged file changes nothing, not even bronze's columns.
        return Script(
            prepare=(prepare[0], *validate, *prepare[1:]),
            body=(truncate, Step(copy, Yields.COPIED, reconcile=0)),
            cleanup=(ddl(f"DROP TABLE IF EXISTS {check.sql}"),),
            holds=table,
            holds_by="_XO_SOURCE_FILE",
        )

    helper = table.with_name(table.name + COPY_SUFFIX)
    source = ", ".join(quote(c) for c in file_cols)
    row = quote("_XO_COPY_ROW")
    prepare.append(
        ddl(
            f"CREATE OR REPLACE TABLE {helper.sql} ("
            + ", ".join(f"{quote(c)} VARCHAR" for c in file_cols)
            + ")"
        )
    )
    copy = (
        f"COPY INTO {helper.sql} ({source}) FROM {stage} "
        f"{files} FILE_FORMAT = ({EMULATOR_CSV_FORMAT}) {COPY_OPTIONS}"
    )
    # METADATA$FILENAME would be the path within the stage: write the same. fakesnow COPYs
    # the files one after the other, so part i's header is helper row `headers[i]`.
    headers, at = [], 1
    for part in load.files:
        headers.append(at)
        at += (part.rows or 0) + 1
    if len(headers) == 1 or any(part.rows is None for part in load.files):
        source_file, row_number, keep = literal(paths[0]), f"{row} - 1", f"{row} > 1"
    else:
        whens = zip(headers[1:], paths, headers, strict=False)
        source_file = (
            "CASE "
            + " ".join(f"WHEN {row} < {nxt} THEN {literal(p)}" for nxt, p, _ in whens)
            + f" ELSE {literal(paths[-1])} END"
        )
        starts = zip(headers[1:], headers, strict=False)
        row_number = (
            f"{row} - CASE "
            + " ".join(f"WHEN {row} < {nxt} THEN {h}" for nxt, h in starts)
            + f" ELSE {headers[-1]} END"
        )
        keep = f"{row} NOT IN ({', '.join(map(str, headers))})"
    insert = (
        f"INSERT INTO {table.sql} ({target}) SELECT {source}, "
        f"{metadata(source_file, row_number)} FROM (SELECT *, ROW_NUMBER() OVER () AS {row} "
        f"FROM {helper.sql}) WHERE {keep}"
    )
    return Script(
        prepare=tuple(prepare),
        # each part's header row is COPYed as data (one line more than its rows) and dropped
        # by the INSERT
        body=(
            truncate,
            Step(copy, Yields.COPIED, reconcile=1),
            Step(insert, Yields.AFFECTED, reconcile=0),
        ),
        cleanup=(ddl(f"DROP TABLE IF EXISTS {helper.sql}"),),
        holds=table,
        holds_by="_XO_SOURCE_FILE",
    )
