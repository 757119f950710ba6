"""Schema drift and cast failures through the CLI on the embedded target (DuckDB).

Each test drops one pull per day into a landing bucket (an ``s3_upload`` source), runs
``xoelt run`` for the days in order and checks the outcome a user sees: the exit code, the
one-line error naming stage, source and window, what bronze and silver hold, and what the
ledger recorded (``xoelt status``, text and ``--format json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from tests.integration.sources.conftest import SourceHarness, harness
from xoelt.storage.local import LocalObjectStore

__all__ = ["harness"]

REPO = Path(__file__).resolve().parents[2]
PIPE = "test/drift"
DAY1 = "Id,Amount,Note\n1,10,a\n"  # window 2026-11-02, run date 2026-11-03
WINDOW2 = "window=[2026-11-03T00:00:00-05:00, 2026-11-04T00:00:00-05:00)"


def setup(
    h: SourceHarness,
    monkeypatch: pytest.MonkeyPatch,
    pulls: dict[str, str],
    *,
    policy: dict[str, Any] | None = None,
    globals_policy: dict[str, Any] | None = None,
    columns: dict[str, str] | None = None,
) -> None:
    """A one-source pipeline over ``pulls`` (window date → CSV) with the given policies."""
    monkeypatch.setenv("XOELT_SQL", str(REPO / "sql"))
    store = LocalObjectStore(h.home / "objects")
    for day, body in pulls.items():
        store.put_bytes("landing", f"t/{day}/pull.csv", body.encode())
    source: dict[str, Any] = {
        "source_type": "s3_upload",
        "extractor": {"bucket": "landing", "prefix": "t/{date}/"},
        "silver": {"table": "THINGS", "columns": columns or {"AMOUNT": "NUMBER(38,2)"}},
    }
    if policy is not None:
        source["schema_policy"] = policy
    path = h.pipeline("drift", source)
    if globals_policy is not None:
        doc = yaml.safe_load(path.read_text())
        doc["globals"]["schema_policy"] = globals_policy
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run(h: SourceHarness, day: str, *more: str) -> Any:
    return h.cli("run", PIPE, "--date", day, *more)


def query(h: SourceHarness, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(h.home / "warehouse" / "TEST_DB.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def error_line(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("error: ")][-1]


def findings(h: SourceHarness, stage: str) -> list[dict[str, Any]]:
    """The latest run's ledger findings of ``stage``, as ``status --format json`` shows them."""
    import json

    status = h.cli("status", PIPE, "--format", "json")
    assert status.exit_code == 0, status.output
    (row,) = [r for r in json.loads(status.output)["runs"] if r["stage"] == stage]
    return row["findings"]


def status_text(h: SourceHarness) -> str:
    status = h.cli("status", PIPE)
    assert status.exit_code == 0, status.output
    return status.output


def test_a_typed_column_vanishing_fails_the_load_and_keeps_bronze(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(harness, monkeypatch, {"2026-11-02": DAY1, "2026-11-03": "Id,Note\n2,b\n"})
    assert run(harness, "2026-11-03").exit_code == 0
    line = error_line(run(harness, "2026-11-04"))
    assert line == (
        f"error: load failed source=src {WINDOW2}: schema drift against bronze "
        "TEST_DB.BRONZE.T_SRC: column AMOUNT missing from this pull (silver types it); "
        "nothing loaded (see schema_policy)"
    )
    assert query(harness, 'SELECT "ID", "AMOUNT", "NOTE" FROM "BRONZE"."T_SRC"') == [
        ("1", "10", "a")
    ]
    (found,) = findings(harness, "load")
    assert found["kind"] == "missing_column" and found["severity"] == "error"
    assert found["data"] == {"columns": ["AMOUNT"], "policy": "auto"}
    text = status_text(harness)
    assert "src load: load failed source=src" in text
    assert (
        "error: src load missing_column: column AMOUNT missing from this pull (silver types "
        "it); refused"
    ) in text


def test_an_untyped_column_vanishing_warns_and_loads_null(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(harness, monkeypatch, {"2026-11-02": DAY1, "2026-11-03": "Id,Amount\n2,20\n"})
    assert run(harness, "2026-11-03").exit_code == 0
    second = run(harness, "2026-11-04")
    assert second.exit_code == 0, second.output
    assert "warn: src missing_column: column NOTE missing from this pull" in second.output
    assert query(harness, 'SELECT "ID", "AMOUNT", "NOTE" FROM "SILVER"."THINGS" ORDER BY 1') == [
        ("1", 10, "a"),
        ("2", 20, None),
    ]
    assert findings(harness, "load") == [
        {
            "kind": "missing_column",
            "severity": "warn",
            "count": 1,
            "message": "column NOTE missing from this pull: it loads as NULL (bronze "
            "TEST_DB.BRONZE.T_SRC keeps it; on_missing_column: auto)",
            "data": {"columns": ["NOTE"], "policy": "auto"},
        }
    ]
    assert "warn: src load missing_column: column NOTE missing" in status_text(harness)


def test_a_new_column_is_added_and_recorded(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(
        harness, monkeypatch, {"2026-11-02": DAY1, "2026-11-03": "Id,Amount,Note,Extra\n2,20,b,x\n"}
    )
    assert run(harness, "2026-11-03").exit_code == 0
    assert run(harness, "2026-11-04").exit_code == 0
    assert query(harness, 'SELECT "ID", "EXTRA" FROM "SILVER"."THINGS" ORDER BY 1') == [
        ("1", None),
        ("2", "x"),
    ]
    (found,) = findings(harness, "load")
    assert (found["kind"], found["severity"], found["data"]) == (
        "new_column",
        "info",
        {"columns": ["EXTRA"], "policy": "add"},
    )
    assert (
        "info: src load new_column: new column EXTRA in this pull: added to bronze "
        "TEST_DB.BRONZE.T_SRC as VARCHAR"
    ) in status_text(harness)


def test_a_new_column_fails_under_on_new_column_fail(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(
        harness,
        monkeypatch,
        {"2026-11-02": DAY1, "2026-11-03": "Id,Amount,Note,Extra\n2,20,b,x\n"},
        policy={"on_new_column": "fail"},
    )
    assert run(harness, "2026-11-03").exit_code == 0
    line = error_line(run(harness, "2026-11-04"))
    assert line.startswith(f"error: load failed source=src {WINDOW2}: schema drift")
    assert "new column EXTRA in this pull (on_new_column: fail); nothing loaded" in line
    assert query(
        harness,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'T_SRC' "
        "AND column_name NOT LIKE '\\_XO\\_%' ESCAPE '\\' ORDER BY ordinal_position",
    ) == [("ID",), ("AMOUNT",), ("NOTE",)]
    (found,) = findings(harness, "load")
    assert (found["kind"], found["severity"]) == ("new_column", "error")


def test_a_rename_is_hinted_and_a_typed_rename_fails(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(
        harness,
        monkeypatch,
        {
            "2026-11-02": DAY1,
            "2026-11-03": "Id,Amount_Usd,Note\n2,20,b\n",
            "2026-11-04": "Id,Amount,Remark\n3,30,c\n",
        },
    )
    assert run(harness, "2026-11-03").exit_code == 0
    line = error_line(run(harness, "2026-11-04"))
    assert line.endswith(
        "column AMOUNT missing from this pull (silver types it); AMOUNT looks renamed to "
        "AMOUNT_USD; nothing loaded (see schema_policy)"
    )
    assert [f["kind"] for f in findings(harness, "load")] == [
        "missing_column",
        "new_column",
        "renamed_column",
    ]
    # An untyped column renamed: it loads (NOTE NULL, REMARK added), with the hint recorded.
    third = run(harness, "2026-11-05")
    assert third.exit_code == 0, third.output
    hint = "NOTE looks renamed to REMARK (NOTE left and REMARK arrived in this pull)"
    assert f"warn: src load renamed_column: {hint}" in status_text(harness)


def test_globals_policy_applies_and_a_source_overrides_it(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(
        harness,
        monkeypatch,
        {"2026-11-02": DAY1, "2026-11-03": "Id,Amount\n2,20\n"},
        globals_policy={"on_missing_column": "fail"},
    )
    assert run(harness, "2026-11-03").exit_code == 0
    line = error_line(run(harness, "2026-11-04"))
    assert "column NOTE missing from this pull (on_missing_column: fail)" in line
    setup(
        harness,
        monkeypatch,
        {},
        globals_policy={"on_missing_column": "fail"},
        policy={"on_missing_column": None},
    )
    assert run(harness, "2026-11-04").exit_code == 0
    assert [(f["kind"], f["severity"]) for f in findings(harness, "load")] == [
        ("missing_column", "info")
    ]


PULL_WITH_BAD_AMOUNTS = "Id,Amount\n1,10\n2,oops\n3,\n4,n/a\n5,12.5\n"


def test_cast_failures_fail_the_transform_naming_column_and_values(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(harness, monkeypatch, {"2026-11-02": DAY1, "2026-11-03": PULL_WITH_BAD_AMOUNTS})
    assert run(harness, "2026-11-03").exit_code == 0
    line = error_line(run(harness, "2026-11-04"))
    assert line == (
        f"error: transform failed source=src {WINDOW2}: AMOUNT (NUMBER(38,2)): 2 of 4 "
        "non-empty values did not convert, e.g. 'oops', 'n/a'; above max_cast_failures 0, "
        "nothing written to silver"
    )
    assert query(harness, 'SELECT "ID", "AMOUNT" FROM "SILVER"."THINGS"') == [("1", 10)]
    failed, summary = findings(harness, "transform")
    assert (failed["kind"], failed["severity"], failed["count"]) == ("cast_failures", "error", 2)
    assert failed["data"]["examples"] == ["oops", "n/a"]
    assert summary["data"]["columns"] == {
        "AMOUNT": {"type": "NUMBER(38,2)", "non_empty": 4, "failed": 2}
    }
    text = status_text(harness)
    assert "src transform: transform failed source=src" in text
    assert "error: src transform cast_failures: AMOUNT (NUMBER(38,2)): 2 of 4" in text


def test_cast_failures_within_the_limit_are_counted_and_loaded_as_null(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(
        harness,
        monkeypatch,
        {"2026-11-02": PULL_WITH_BAD_AMOUNTS},
        globals_policy={"max_cast_failures": "50%"},
    )
    result = run(harness, "2026-11-03")
    assert result.exit_code == 0, result.output
    assert query(harness, 'SELECT "ID", "AMOUNT" FROM "SILVER"."THINGS" ORDER BY 1') == [
        ("1", 10),
        ("2", None),
        ("3", None),
        ("4", None),
        ("5", 12.5),
    ]
    warned, summary = findings(harness, "transform")
    assert (warned["kind"], warned["severity"], warned["count"]) == ("cast_failures", "warn", 2)
    assert warned["message"] == (
        "AMOUNT (NUMBER(38,2)): 2 of 4 non-empty values did not convert, e.g. 'oops', 'n/a'; "
        "they load as NULL (max_cast_failures 50%)"
    )
    assert warned["data"]["allowed"] == 2
    assert (summary["kind"], summary["count"]) == ("cast_counts", 2)
    text = status_text(harness)
    assert "warn: src transform cast_failures: AMOUNT (NUMBER(38,2)): 2 of 4" in text
    assert "info: src transform cast_counts: 1 typed column checked: 2 non-empty values" in text
