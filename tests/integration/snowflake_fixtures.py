"""fakesnow's server on loopback, reading staged files from the moto S3 server.

The real snowflake-connector-python talks HTTP to ``fakesnow.server()``; fakesnow runs each
statement on one in-process DuckDB, whose httpfs extension (from the duckdb-extension-httpfs
wheel, since it cannot be downloaded here) reads ``s3://`` stage URLs from moto.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import fakesnow
import pytest

from xoelt.warehouse.snowflake import SnowflakeWarehouse

# Importing the submodule fakesnow.server (which fakesnow.server() itself does) replaces the
# package attribute `server`, the function, by the module: keep the function first.
_START_FAKESNOW = fakesnow.server

STATEMENTS: list[str] = []
"""Every statement the fakesnow server ran this session, in order (tests read their slice)."""
_NOW = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00")
_QUERY_TAG = re.compile(r"^ALTER SESSION SET QUERY_TAG = '((?:[^']|'')*)'$", re.S)

STAGE_BUCKET = "xoelt-stage"
SCHEMA = "BRONZE"
STAGE = "XO_STAGE"
_databases = itertools.count(1)


def httpfs_extension() -> Path:
    """The httpfs build shipped by the duckdb-extension-httpfs wheel for this DuckDB."""
    import duckdb
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    path = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.is_file():
        pytest.skip(f"no httpfs extension for DuckDB {duckdb.__version__} under {root}")
    return path


@pytest.fixture(scope="session")
def fakesnow_kwargs(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    """Connect kwargs for a fakesnow server whose DuckDB reads ``s3://`` from moto."""
    if isinstance(_START_FAKESNOW, ModuleType):
        pytest.fail("fakesnow.server was imported before this module; cannot start the server")
    import fakesnow.server as fs_server
    from fakesnow.cursor import FakeSnowflakeCursor
    from sqlglot import exp

    describe = FakeSnowflakeCursor._describe_last_sql

    def describe_last_sql(self: FakeSnowflakeCursor) -> list:
        # fakesnow 0.11.18 bug: after BEGIN the server runs `DESCRIBE BEGIN` on DuckDB to build
        # the answer's rowtype and fails ("Table with name BEGIN does not exist!"). COMMIT,
        # ROLLBACK and TRUNCATE are answered with a status SELECT and are not affected.
        if isinstance(self._last_transformed, exp.Transaction):
            return []
        return describe(self)

    endpoint = moto_endpoint.removeprefix("http://")
    # Every session of the server is a cursor of this one DuckDB instance, so a loaded
    # extension and a temporary secret reach them all (no ~/.duckdb, no HOME changes).
    duck = fs_server.shared_fs.duck_conn
    duck.execute(f"LOAD '{httpfs_extension()}'")
    duck.execute(
        "CREATE OR REPLACE SECRET xoelt_moto (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
        f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
    )
    import fakesnow.copy_into as fs_copy

    inserts = fs_copy._inserts

    def padded_inserts(expr: Any, params: Any, urls: list[str], *args: Any) -> list[Any]:
        # fakesnow 0.11.18 bug: it selects column0, column1, … from read_csv(header=false),
        # but DuckDB zero-pads its generated names once a file has 10 columns or more
        # (column00 … column10), so any COPY of a wide file fails to bind.
        out = inserts(expr, params, urls, *args)
        width = len(str(len(expr.this.expressions) - 1))
        if width > 1:
            for insert in out:
                for ident in insert.find_all(exp.Identifier):
                    name = str(ident.this)
                    if name.startswith("column") and name[6:].isdigit():
                        ident.set("this", f"column{int(name[6:]):0{width}d}")
        return out

    execute = FakeSnowflakeCursor.execute

    def recording_execute(self: FakeSnowflakeCursor, command: str, *args: Any, **kw: Any) -> Any:
        # fakesnow 0.11.18 gap: ALTER SESSION SET QUERY_TAG is "not implemented". Snowflake
        # answers it with a status row; so does this, and the statement is kept for the test.
        STATEMENTS.append(command)
        if _QUERY_TAG.match(command.strip()):
            return execute(self, "SELECT 'Statement executed successfully.' AS status")
        return execute(self, command, *args, **kw)

    read_csv = fs_copy.ReadCSV.read_expression

    def quoted_empty_is_a_string(self: Any, url: str) -> Any:
        # fakesnow reads CSV with DuckDB's default allow_quoted_nulls=true, so `""` loads as
        # NULL; Snowflake, with FIELD_OPTIONALLY_ENCLOSED_BY = '"' (and EMPTY_FIELD_AS_NULL
        # TRUE, its default), loads `""` as an empty string and only `,,` as NULL.
        call = read_csv(self, url)
        if self.quote:
            call.append("expressions", self.make_eq("allow_quoted_nulls", False))
        return call

    with pytest.MonkeyPatch.context() as mp:
        _transform_in_place(mp, FakeSnowflakeCursor, exp.Expression)
        mp.setattr(FakeSnowflakeCursor, "execute", recording_execute)
        mp.setattr(FakeSnowflakeCursor, "_describe_last_sql", describe_last_sql)
        mp.setattr(fs_copy, "_inserts", padded_inserts)
        mp.setattr(fs_copy.ReadCSV, "read_expression", quoted_empty_is_a_string)
        with _START_FAKESNOW() as kwargs:
            yield kwargs


@dataclass
class TransformAudit:
    """Whether :func:`_transform_in_place` checks each statement, and what differed."""

    on: bool
    differences: list[str] = field(default_factory=list)


AUDIT = TransformAudit(on=os.environ.get("XOELT_TEST_FAKESNOW_AUDIT") == "1")


def _transform_in_place(mp: pytest.MonkeyPatch, cursor: Any, expression: Any) -> None:
    """Speed, not behaviour: fakesnow's ``_transform`` chains ~75 sqlglot ``transform`` calls
    on a statement, each with sqlglot's default ``copy=True``, i.e. a deep copy of the whole
    tree per step: about half of a Snowflake end-to-end test's time went to ``deepcopy``.
    Here the statement is copied once and the chain's own steps run in place on that copy
    (sqlglot's ``transform`` walks the copy it makes in place anyway, so a step sees the same
    tree either way); a ``transform`` called from *inside* a step keeps its ``copy``.
    While :data:`AUDIT` is on (``XOELT_TEST_FAKESNOW_AUDIT=1`` for a whole run) fakesnow's own
    chain also runs on every statement, and a difference (``repr`` of the result: every node
    and argument; the clock fakesnow stamps a created stage with aside) is recorded and
    fails the statement."""
    local = threading.local()
    base_transform, base_chain = expression.transform, cursor._transform

    def transform(self: Any, fun: Any, *args: Any, copy: bool = True, **kwargs: Any) -> Any:
        depth = getattr(local, "depth", None)
        if depth is None:  # not inside the chain
            return base_transform(self, fun, *args, copy=copy, **kwargs)
        local.depth = depth + 1
        try:
            return base_transform(self, fun, *args, copy=copy and depth > 0, **kwargs)
        finally:
            local.depth = depth

    def chain(self: Any, statement: Any, params: Any) -> Any:
        audit = AUDIT.on
        expected = repr(base_chain(self, statement.copy(), params)) if audit else ""
        local.depth = 0
        try:
            out = base_chain(self, statement.copy(), params)
        finally:
            local.depth = None
        if audit and _NOW.sub("<now>", repr(out)) != _NOW.sub("<now>", expected):
            AUDIT.differences.append(statement.sql(dialect="snowflake"))
            raise AssertionError(f"in-place transform differs for {statement.sql()!r}")
        return out

    mp.setattr(expression, "transform", transform)
    mp.setattr(cursor, "_transform", chain)


def create_database(kwargs: dict[str, Any], database: str) -> None:
    """What the account owner does once: the database, the bronze schema, the external stage."""
    import snowflake.connector

    con = snowflake.connector.connect(**kwargs)
    try:
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE IF NOT EXISTS "{database}"')
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"."{SCHEMA}"')
            cur.execute(
                f'CREATE STAGE IF NOT EXISTS "{database}"."{SCHEMA}"."{STAGE}" '
                f"URL = 's3://{STAGE_BUCKET}/'"
            )
    finally:
        con.close()


@pytest.fixture
def stage_bucket(s3_client: Any) -> Any:
    """The (emptied) stage bucket on moto; returns the boto3 client."""
    buckets = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    if STAGE_BUCKET not in buckets:
        s3_client.create_bucket(Bucket=STAGE_BUCKET)
    return s3_client


@pytest.fixture
def snowflake_database(fakesnow_kwargs: dict[str, Any]) -> str:
    """A fresh database per test (the fakesnow server lives for the whole session)."""
    database = f"XO_TEST_{next(_databases)}"
    create_database(fakesnow_kwargs, database)
    return database


@pytest.fixture
def snowflake_wh(
    fakesnow_kwargs: dict[str, Any], snowflake_database: str, stage_bucket: Any
) -> Iterator[SnowflakeWarehouse]:
    """The adapter under test, in emulator mode (fakesnow cannot run COPY transformations)."""
    wh = SnowflakeWarehouse(fakesnow_kwargs, snowflake_database, copy_transformations=False)
    yield wh
    wh.close()


def fakesnow_target(
    fakesnow_kwargs: dict[str, Any], stage: str, moto_endpoint: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A ``snowflake`` target (as in ``targets.yaml``) on the fakesnow server: the password a
    ``${VAR}`` reference, COPY without transformations (fakesnow cannot run them), and the
    object store on moto when ``moto_endpoint`` is given."""
    target: dict[str, Any] = {
        "type": "snowflake",
        "account": fakesnow_kwargs["account"],
        "user": fakesnow_kwargs["user"],
        "password": "${XO_TEST_SNOWFLAKE_PASSWORD}",
        "host": fakesnow_kwargs["host"],
        "port": fakesnow_kwargs["port"],
        "protocol": "http",
        "stage": stage,
        "copy_transformations": False,
        "login_timeout": 10,
        **extra,
    }
    if moto_endpoint is not None:
        target["s3"] = {"endpoint_url": moto_endpoint, "region": "us-east-1"}
    return target
