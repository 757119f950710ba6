"""Error mapping: adapters say *what* failed (one line, the vendor error chained), core says *where*.

Covers :class:`StageFailed` and ``XoeltError.prefixed``, core's ``_failing_as`` (directly and
through ``execute``), the local store's OSError mapping, the S3 store's botocore mapping (a
tiny stand-in for boto3's client raising real botocore exceptions), DuckDB's SQL errors, and
the Snowflake helpers that read connector errors and DML answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError, EndpointConnectionError

from xoelt.core import _failing_as, execute
from xoelt.errors import (
    ConfigError,
    DataError,
    InputError,
    SourceError,
    StageFailed,
    StorageError,
    WarehouseError,
    XoeltError,
)
from xoelt.pipelines import load_pipeline
from xoelt.plan import RunPlan, build_plan
from xoelt.settings import Settings
from xoelt.storage.base import ObjectMissing
from xoelt.storage.local import LocalObjectStore
from xoelt.storage.s3 import S3ObjectStore
from xoelt.targets import resolve_target
from xoelt.warehouse.base import Answer, Yields
from xoelt.warehouse.duckdb import DuckDBWarehouse
from xoelt.warehouse.snowflake import affected_rows, copy_outcome

WINDOW = "[2026-11-02T00:00:00-05:00, 2026-11-03T00:00:00-05:00)"

# -- StageFailed --------------------------------------------------------------------------------


def test_stage_failed_says_stage_source_and_window_then_the_causes_message() -> None:
    err = StageFailed("load", DataError("rows differ"), source="orders", window=WINDOW)
    assert str(err) == f"load failed source=orders window={WINDOW}: rows differ"
    assert (err.stage, err.source, err.window, err.detail) == (
        "load",
        "orders",
        WINDOW,
        "rows differ",
    )


def test_stage_failed_leaves_out_what_it_does_not_know() -> None:
    assert str(StageFailed("status", DataError("x"), source=None, window=None)) == (
        "status failed: x"
    )
    assert str(StageFailed("load", DataError("x"), source=None, window="w")) == (
        "load failed window=w: x"
    )


@pytest.mark.parametrize(
    ("cause", "exit_code", "transient"),
    [
        (StorageError("throttled", transient=True), 1, True),
        (WarehouseError("syntax"), 1, False),
        (InputError("bad date"), 2, False),
        (ConfigError("bad key", file="p.yaml", line=3), 2, False),
    ],
    ids=["transient-storage", "terminal-warehouse", "input", "config"],
)
def test_stage_failed_takes_exit_code_and_transient_from_its_cause(
    cause: XoeltError, exit_code: int, transient: bool
) -> None:
    err = StageFailed("extract", cause, source="s", window="w")
    assert (err.exit_code, err.transient) == (exit_code, transient)
    assert err.cause is cause
    assert str(err).endswith(f": {cause.message}")


def test_a_foreign_cause_is_rendered_as_its_type_and_message_with_exit_1() -> None:
    cause = KeyError("missing_column")
    err = StageFailed("stage", cause, source="s", window="w")
    assert err.detail == "KeyError: 'missing_column'"
    assert str(err) == "stage failed source=s window=w: KeyError: 'missing_column'"
    assert (err.exit_code, err.transient) == (1, False)


# -- XoeltError.prefixed ------------------------------------------------------------------------


def test_prefixed_is_a_copy_of_the_same_class_and_transience_with_context_around() -> None:
    original = WarehouseError("DuckDB: IO Error: no file", transient=True)
    clone = original.prefixed("loading T failed: ", "; bronze left unchanged")
    assert type(clone) is WarehouseError
    assert clone.transient is True
    assert str(clone) == "loading T failed: DuckDB: IO Error: no file; bronze left unchanged"
    assert clone.args == (str(clone),)
    assert str(original) == "DuckDB: IO Error: no file"  # the original is untouched


def test_prefixed_is_raised_from_the_original_keeping_the_chain() -> None:
    root = OSError("disk full")
    with pytest.raises(StorageError) as err:
        try:
            try:
                raise root
            except OSError as exc:
                raise StorageError("cannot write k") from exc
        except StorageError as exc:
            raise exc.prefixed("extract: ") from exc
    assert str(err.value) == "extract: cannot write k"
    assert isinstance(err.value.__cause__, StorageError)
    assert err.value.__cause__.__cause__ is root


def test_prefixed_config_error_keeps_file_line_and_key() -> None:
    clone = ConfigError("bad", file="p.yaml", line=4, key="dag.schedule").prefixed("validate: ")
    assert type(clone) is ConfigError
    assert (clone.file, clone.line, clone.key, clone.exit_code) == ("p.yaml", 4, "dag.schedule", 2)
    assert str(clone) == "validate: p.yaml:4 dag.schedule: bad"


def test_prefixed_works_on_a_stage_failed() -> None:
    err = StageFailed("load", DataError("x"), source="s", window="w")
    assert str(err.prefixed("backfill: ")) == "backfill: load failed source=s window=w: x"


# -- core: _failing_as and execute -----------------------------------------------------------


def test_failing_as_wraps_any_exception_once_with_the_cause_chained() -> None:
    cause = ValueError("bad value")
    with pytest.raises(StageFailed) as err, _failing_as("transform", "orders", WINDOW):
        raise cause
    assert err.value.__cause__ is cause and err.value.cause is cause
    assert (
        str(err.value) == f"transform failed source=orders window={WINDOW}: ValueError: bad value"
    )


def test_failing_as_lets_a_stage_failed_through_untouched() -> None:
    inner = StageFailed("load", DataError("x"), source="a", window="w")
    with (
        pytest.raises(StageFailed) as err,
        _failing_as("outer", "b", "w2"),
        _failing_as("inner", "a", "w"),
    ):
        raise inner
    assert err.value is inner
    with (
        pytest.raises(StageFailed) as nested,
        _failing_as("outer", "b", "w2"),
        _failing_as("inner", "a", "w"),
    ):
        raise DataError("y")
    assert nested.value.stage == "inner"  # wrapped once, by the innermost
    assert isinstance(nested.value.__cause__, DataError)


def test_failing_as_does_not_wrap_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), _failing_as("extract", "s", "w"):
        raise KeyboardInterrupt


def local_plan(tmp_path: Path) -> RunPlan:
    """A one-source s3_upload pipeline on the local target (home and files in tmp_path)."""
    pipeline = {
        "dag": {
            "domain": "shop",
            "pipeline_name": "p",
            "schedule": "50 6 * * *",
            "time_window": {
                "refresh_type": "daily",
                "lag": {"days": 1},
                "timezone": "America/New_York",
            },
        },
        "globals": {"snowflake": {"database": "SHOP_DB"}},
        "sources": {
            "orders": {
                "source_type": "s3_upload",
                "load_strategy": "full_refresh",
                "extractor": {"bucket": "shop-landing", "prefix": "orders/{date}/"},
                "snowflake": {"target_table": "RAW_ORDERS"},
            }
        },
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    settings = Settings(home=tmp_path / "h", sql_root=tmp_path / "sql", targets_file=tmp_path / "t")
    name, bound = resolve_target("local", settings)
    return build_plan(
        load_pipeline(path, env={}), name, bound, date(2026, 11, 3), settings.sql_root
    )


def test_execute_reports_a_failing_stage_as_one_stage_failed(tmp_path: Path) -> None:
    plan = local_plan(tmp_path)
    settings = Settings(home=tmp_path / "h", sql_root=tmp_path / "sql")
    with pytest.raises(StageFailed) as err:
        execute(plan, stages=["extract"], settings=settings)  # the landing bucket is empty
    assert err.value.stage == "extract" and err.value.source == "orders"
    assert str(err.value).startswith(f"extract failed source=orders window={WINDOW}: no files")
    assert isinstance(err.value.__cause__, SourceError)
    assert err.value.exit_code == 1


def test_execute_names_the_first_warehouse_stage_when_the_warehouse_cannot_open(
    tmp_path: Path,
) -> None:
    plan = local_plan(tmp_path)
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "warehouse").write_text("a file where the DuckDB directory goes")
    with pytest.raises(StageFailed) as err:
        execute(plan, stages=["load", "transform"], settings=Settings(home=tmp_path / "h"))
    assert str(err.value).startswith(f"load failed source=orders window={WINDOW}: cannot create ")
    assert isinstance(err.value.__cause__, WarehouseError)


# -- the local store ----------------------------------------------------------------------------

LOCAL_OPS: dict[str, Callable[[LocalObjectStore, Path], object]] = {
    "put_bytes": lambda s, _: s.put_bytes("b", "k/x.csv", b"x"),
    "put_file": lambda s, src: s.put_file("b", "k/x.csv", src),
    "open": lambda s, _: s.open("b", "k/x.csv"),
    "read_range": lambda s, _: s.read_range("b", "k/x.csv", 0, 10),
    "delete": lambda s, _: s.delete("b", "k/x.csv"),
    "lock": lambda s, _: s.lock("b", "k/x.lock", "me", 60),
}


@pytest.mark.parametrize("op", sorted(LOCAL_OPS))
def test_a_store_root_that_is_a_file_gives_a_storage_error_naming_the_path(
    tmp_path: Path, op: str
) -> None:
    root = tmp_path / "objects"
    root.write_text("not a directory")
    src = tmp_path / "src.csv"
    src.write_text("a\n1\n")
    with pytest.raises(StorageError) as err:
        LOCAL_OPS[op](LocalObjectStore(root), src)
    assert str(root) in str(err.value)
    assert "Not a directory" in str(err.value)
    assert not isinstance(err.value, ObjectMissing)  # misconfigured, not absent
    assert isinstance(err.value.__cause__, OSError)
    assert err.value.transient is False


def test_copy_onto_a_bucket_that_is_a_file_names_the_destination(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("ingest", "k/x.csv", b"a\n")
    (tmp_path / "stage").write_text("a file where the bucket goes")
    with pytest.raises(StorageError, match=r"cannot copy to .*/stage/k/x\.csv: Not a directory"):
        store.copy("ingest", "k/x.csv", "stage", "k/x.csv")


@pytest.mark.parametrize("op", ["open", "read_range"])
def test_reading_a_missing_object_is_object_missing_naming_the_path(
    tmp_path: Path, op: str
) -> None:
    with pytest.raises(ObjectMissing) as err:
        LOCAL_OPS[op](LocalObjectStore(tmp_path), tmp_path)
    assert str(err.value) == f"cannot read {tmp_path / 'b' / 'k' / 'x.csv'}: no such object"
    assert isinstance(err.value.__cause__, FileNotFoundError)


def test_copying_a_missing_source_is_object_missing_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing) as err:
        LocalObjectStore(tmp_path).copy("ingest", "k/x.csv", "stage", "k/x.csv")
    assert str(err.value) == f"{tmp_path / 'ingest' / 'k' / 'x.csv'} is missing"
    assert not (tmp_path / "stage").exists()


def test_deleting_a_missing_object_is_not_an_error(tmp_path: Path) -> None:
    LocalObjectStore(tmp_path).delete("b", "nothing/here.csv")


# -- the S3 store (a stand-in for boto3's client, raising botocore's real exceptions) -----------


def client_error(code: str, status: int | None, operation: str = "PutObject") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "x"}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, operation)


class RaisingClient:
    """Stands in for boto3's S3 client: every call raises ``error`` (or answers ``head``)."""

    def __init__(self, error: Exception, head: dict[str, Any] | None = None) -> None:
        self.error = error
        self.head = head
        self.calls: list[str] = []

    def _raise(self, name: str) -> Any:
        self.calls.append(name)
        raise self.error

    def put_object(self, **kw: Any) -> Any:
        return self._raise("put_object")

    def upload_file(self, *a: Any, **kw: Any) -> Any:
        return self._raise("upload_file")

    def get_object(self, **kw: Any) -> Any:
        return self._raise("get_object")

    def head_object(self, **kw: Any) -> Any:
        if self.head is not None:
            return self.head
        return self._raise("head_object")

    def copy_object(self, **kw: Any) -> Any:
        return self._raise("copy_object")

    def delete_object(self, **kw: Any) -> Any:
        return self._raise("delete_object")

    def get_paginator(self, name: str) -> Any:
        client = self

        class Paginator:
            def paginate(self, **kw: Any) -> Iterator[dict[str, Any]]:
                client._raise("list_objects_v2")
                yield {}

        return Paginator()


S3_OPS: dict[str, tuple[str, Callable[[S3ObjectStore], object]]] = {
    "put_bytes": ("put", lambda s: s.put_bytes("b", "k/x.csv", b"x")),
    "put_file": ("upload", lambda s: s.put_file("b", "k/x.csv", Path("/dev/null"))),
    "open": ("get", lambda s: s.open("b", "k/x.csv")),
    "read_range": ("ranged get", lambda s: s.read_range("b", "k/x.csv", 0, 8)),
    "size": ("head", lambda s: s.size("b", "k/x.csv")),
    "delete": ("delete", lambda s: s.delete("b", "k/x.csv")),
}


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
        ("TooManyRequests", 429, True),
        ("AccessDenied", 403, False),
        ("NoSuchBucket", 404, False),
        ("Weird", None, False),
    ],
)
@pytest.mark.parametrize("op", sorted(S3_OPS))
def test_s3_client_errors_become_one_line_storage_errors_transient_for_5xx_and_429(
    op: str, code: str, status: int | None, transient: bool
) -> None:
    what, call = S3_OPS[op]
    error = client_error(code, status)
    with pytest.raises(StorageError) as err:
        call(S3ObjectStore(client=RaisingClient(error)))
    assert type(err.value) is StorageError
    assert str(err.value) == f"S3 {what} s3://b/k/x.csv: {code} x"
    assert err.value.transient is transient
    assert err.value.__cause__ is error


def test_s3_connection_failures_are_transient_storage_errors() -> None:
    error = EndpointConnectionError(endpoint_url="https://s3.example.invalid")
    with pytest.raises(StorageError) as err:
        S3ObjectStore(client=RaisingClient(error)).put_bytes("b", "k", b"x")
    assert err.value.transient is True
    assert str(err.value).startswith("S3 put s3://b/k: Could not connect to the endpoint URL")
    assert err.value.__cause__ is error


def test_s3_copy_of_a_missing_source_is_object_missing_naming_it() -> None:
    client = RaisingClient(client_error("404", 404, "HeadObject"))
    with pytest.raises(ObjectMissing, match=r"^s3://ingest/k/x\.csv is missing$"):
        S3ObjectStore(client=client).copy("ingest", "k/x.csv", "stage", "k/x.csv")
    assert client.calls == ["head_object"]  # nothing copied


def test_s3_copy_failure_names_the_source() -> None:
    client = RaisingClient(
        client_error("AccessDenied", 403, "CopyObject"), head={"ContentLength": 3}
    )
    with pytest.raises(StorageError, match=r"^S3 copy from s3://ingest/k/x\.csv: AccessDenied x$"):
        S3ObjectStore(client=client).copy("ingest", "k/x.csv", "stage", "k/x.csv")


def test_s3_exists_is_false_on_404_and_a_storage_error_otherwise() -> None:
    missing = S3ObjectStore(client=RaisingClient(client_error("404", 404, "HeadObject")))
    assert missing.exists("b", "k") is False
    denied = S3ObjectStore(client=RaisingClient(client_error("403", 403, "HeadObject")))
    with pytest.raises(StorageError, match=r"^S3 head s3://b/k: 403 x$"):
        denied.exists("b", "k")


def test_s3_ranged_get_past_the_end_is_empty_not_an_error() -> None:
    store = S3ObjectStore(client=RaisingClient(client_error("InvalidRange", 416, "GetObject")))
    assert store.read_range("b", "k", 0, 8192) == b""


def test_s3_list_failures_are_storage_errors_too() -> None:
    store = S3ObjectStore(client=RaisingClient(client_error("SlowDown", 503, "ListObjectsV2")))
    with pytest.raises(StorageError) as err:
        list(store.list("landing", "orders/"))
    assert err.value.transient is True


# -- DuckDB -------------------------------------------------------------------------------------


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    wh = DuckDBWarehouse(tmp_path / "wh", ["DB"], "DB")
    yield wh
    wh.close()


def test_duckdb_sql_error_is_a_one_line_warehouse_error_caused_by_duckdb(
    duck: DuckDBWarehouse,
) -> None:
    import duckdb

    with pytest.raises(WarehouseError) as err:
        duck.query("SELEC 1", native=True)  # DuckDB's message spans four lines
    assert str(err.value) == 'DuckDB: Parser Error: syntax error at or near "SELEC"'
    assert isinstance(err.value.__cause__, duckdb.Error)
    assert "\n" in str(err.value.__cause__)
    assert err.value.transient is False


def test_duckdb_error_in_translated_snowflake_sql_is_a_warehouse_error(
    duck: DuckDBWarehouse,
) -> None:
    import duckdb

    with pytest.raises(WarehouseError) as err:
        duck.query('SELECT IFF("X" > 1, 1, 0) FROM "DB"."NOPE"."T"')
    assert str(err.value).startswith("DuckDB: Catalog Error: ")
    assert "\n" not in str(err.value)
    assert isinstance(err.value.__cause__, duckdb.CatalogException)


def test_duckdb_snowflake_sql_that_does_not_parse_is_a_warehouse_error(
    duck: DuckDBWarehouse,
) -> None:
    with pytest.raises(WarehouseError):
        duck.query("SELECT (((")


def test_duckdb_count_of_refuses_an_answer_without_a_count(duck: DuckDBWarehouse) -> None:
    assert duck.count_of(Yields.AFFECTED, Answer(["Count"], [(3,)])).rows == 3
    with pytest.raises(WarehouseError, match=r"DuckDB gave no affected row count \(\['x'\]\)"):
        duck.count_of(Yields.AFFECTED, Answer(["x"], [(3,)]))
    with pytest.raises(WarehouseError, match="no copied row count"):
        duck.count_of(Yields.COPIED, Answer(["Count"], [(3,)]))


def test_duckdb_database_file_that_is_not_duckdb_is_a_warehouse_error(tmp_path: Path) -> None:
    import duckdb

    (tmp_path / "DB.duckdb").write_text("this is not a database\n" * 200)
    with pytest.raises(WarehouseError) as err:
        DuckDBWarehouse(tmp_path, ["DB"], "DB")
    assert str(err.value).startswith(f"cannot open {tmp_path / 'DB.duckdb'}: ")
    assert "\n" not in str(err.value)
    assert isinstance(err.value.__cause__, duckdb.Error)


def test_duckdb_directory_that_cannot_be_made_is_a_warehouse_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(WarehouseError, match=r"cannot create .*/file/wh: Not a directory"):
        DuckDBWarehouse(tmp_path / "file" / "wh", ["DB"], "DB")


# -- Snowflake (what tests/integration/test_snowflake_warehouse.py does not cover) --------------


def test_snowflake_error_messages_are_cut_to_500_characters() -> None:
    from snowflake.connector import errors

    from xoelt.warehouse.snowflake import to_warehouse_error

    err = to_warehouse_error(errors.ProgrammingError(msg="x" * 2000, errno=1003, sqlstate="42000"))
    assert len(str(err)) == len("Snowflake: ") + 500
    assert str(err).endswith("x...")


def test_snowflake_error_prefix_names_what_was_being_done() -> None:
    from snowflake.connector import errors

    from xoelt.warehouse.snowflake import to_warehouse_error

    err = to_warehouse_error(
        errors.DatabaseError(msg="Incorrect username or password was specified.", errno=250001),
        "cannot connect to Snowflake account xy12345",
    )
    assert str(err) == (
        "cannot connect to Snowflake account xy12345: "
        "250001: Incorrect username or password was specified."
    )
    assert err.transient is False


@pytest.mark.parametrize(
    ("name", "transient"),
    [
        ("TooManyRequests", True),
        ("GatewayTimeoutError", True),
        ("BadGatewayError", True),
        ("NonRetryableTlsError", False),  # an OperationalError that retrying cannot fix
        ("ForbiddenError", False),
        ("ProgrammingError", False),
    ],
)
def test_snowflake_transience_by_connector_error_class(name: str, transient: bool) -> None:
    from snowflake.connector import errors

    from xoelt.warehouse.snowflake import to_warehouse_error

    assert to_warehouse_error(getattr(errors, name)(msg="m")).transient is transient


def test_a_non_connector_exception_is_a_terminal_warehouse_error() -> None:
    from xoelt.warehouse.snowflake import to_warehouse_error

    err = to_warehouse_error(RuntimeError("socket\n  closed"))
    assert (str(err), err.transient) == ("Snowflake: socket closed", False)


def test_affected_rows_sums_the_named_count_columns_of_a_dml_answer() -> None:
    assert affected_rows(["number of rows inserted"], [(3,)]) == 3
    merge = ["number of rows inserted", "number of rows updated"]
    assert affected_rows(merge, [(2, 5)]) == 7
    assert affected_rows(["number of rows deleted"], [(0,)]) == 0
    update = ["number of rows updated", "number of multi-joined rows updated"]
    assert affected_rows(update, [(4, 4)]) == 4  # multi-joined rows are a subset, not more
    assert affected_rows(["Number Of Rows Inserted"], [("6",)]) == 6


@pytest.mark.parametrize(
    ("columns", "rows"),
    [
        (["status"], [("Statement executed successfully.",)]),
        (["number of rows inserted"], []),
        ([], []),
    ],
    ids=["no-count-column", "no-row", "no-answer"],
)
def test_affected_rows_refuses_an_answer_without_a_count(
    columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    with pytest.raises(WarehouseError, match=r"^Snowflake gave no affected-row count"):
        affected_rows(columns, rows)


def test_copy_outcome_sums_rows_over_files_whatever_the_column_case() -> None:
    cols = ["FILE", "STATUS", "ROWS_PARSED", "ROWS_LOADED", "FIRST_ERROR"]
    rows = [("a.csv", "LOADED", 2, 2, None), ("b.csv", "loaded", 5, 5, None)]
    outcome = copy_outcome(cols, rows)
    assert (outcome.files, outcome.rows_loaded, outcome.count.note) == (2, 7, "")


def test_copy_outcome_of_a_failed_file_names_it_and_its_first_error() -> None:
    cols = ["file", "status", "rows_loaded", "first_error"]
    with pytest.raises(WarehouseError, match=r"^COPY LOAD_FAILED for a\.csv: Numeric value"):
        copy_outcome(cols, [("a.csv", "LOAD_FAILED", 0, "Numeric value 'x' is not recognized")])
