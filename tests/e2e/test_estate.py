"""The estate end to end: CORE_DB's roster, then WBP_DB and CND_DB, whose gold reads CORE_DB.

The real extractors (bamboohr_api, gladly_api, sprout_social_api) run against the fakes of
tests/fakes on 127.0.0.1, through ``scripts/estate_data.py`` (what ``make demo`` runs), with
the CLI in subprocesses. Expected values are computed here from the generated sample data,
not copied from a run.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.e2e.conftest import REPO
from tests.integration.snowflake_fixtures import (
    STAGE,
    create_database,
    fakesnow_kwargs,
    fakesnow_target,
)

__all__ = ["fakesnow_kwargs"]

NY = ZoneInfo("America/New_York")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("estate_data", REPO / "scripts/estate_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["estate_data"] = module
    spec.loader.exec_module(module)
    return module


estate_data = _script()


@pytest.fixture(scope="module")
def estate_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, dict[str, str]]:
    """Two days of the whole estate on the local target (DuckDB), core first."""
    home = tmp_path_factory.mktemp("estate") / "home"
    estate = estate_data.Estate(estate_data.run_dates(2))
    env = estate_data.run_estate(estate, home, echo=False)
    return estate, home, env


def _query(home: Path, database: str, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect(str(home / "warehouse" / f"{database}.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _day(ts: str) -> date:
    return datetime.fromisoformat(ts).astimezone(NY).date()


def test_core_keeps_each_clients_roster_as_history_and_one_agent_dimension(
    estate_run: tuple[Any, Path, dict[str, str]],
) -> None:
    _, home, _ = estate_run
    # run 2 moved Bilal (ag_02) to Support and made Ines (ag_23) a team lead: two versions
    versions = dict(
        _query(
            home, "CORE_DB", 'SELECT "ID", COUNT(*) FROM "SILVER"."ROSTER_WARBYPARKER" GROUP BY 1'
        )
    )
    assert versions == {99: 1, 100: 1, 101: 2, 102: 1, 103: 1, 104: 1}
    cnd = _query(home, "CORE_DB", 'SELECT "FIRSTNAME", "JOBTITLE", "IS_CURRENT" FROM "SILVER"."ROSTER_CONDENAST" WHERE "ID" = 107 ORDER BY "VALID_FROM"')  # fmt: skip
    assert cnd == [("Ines", "Customer Experience Agent", False), ("Ines", "Team Lead", True)]
    agents = {r[0]: r[1:] for r in _query(home, "CORE_DB", 'SELECT "AGENT_ID", "CLIENT", "TEAM", "VERSIONS" FROM "GOLD"."DIM_AGENTS"')}  # fmt: skip
    # the director without a Gladly seat is in the roster, not in the agent dimension
    assert sorted(agents) == ["ag_01", "ag_02", "ag_03", "ag_04", "ag_05", "ag_21", "ag_22", "ag_23", "ag_24"]  # fmt: skip
    assert agents["ag_02"] == ("warbyparker", "Support", 2)
    assert agents["ag_21"] == ("condenast", "Editorial", 1)


def test_wbp_gold_joins_the_shared_roster_across_databases(
    estate_run: tuple[Any, Path, dict[str, str]],
) -> None:
    estate, home, _ = estate_run
    contacts = _query(home, "WBP_DB", 'SELECT "AGENT_ID", "EMPLOYEE_ID", "TEAM" FROM "GOLD"."FCT_CONTACTS"')  # fmt: skip
    sessions = estate.wbp.sessions
    assert len(contacts) == len(sessions)  # one contact per generated session
    employee = {p["customGladlyAgentId"]: p["id"] for p in estate_data.roster(1)}
    assert {(a, e) for a, e, _ in contacts} == {
        (a, employee[a]) for a in {s["agent_id"] for s in sessions}
    }
    dashboard = {r[0]: r[1:] for r in _query(home, "WBP_DB", 'SELECT "AGENT_ID", "CONTACTS", "SOCIAL_MESSAGES", "TEAM" FROM "GOLD"."RPT_AGENT_DASHBOARD"')}  # fmt: skip
    handled = Counter(s["agent_id"] for s in sessions)
    sent = Counter(
        m["internal"]["sent_by"]["email"]
        for m in estate.sprout.messages
        if m["internal"]["sent_by"]
    )
    for agent, (n, social, team) in dashboard.items():
        person = next(p for p in estate_data.roster(1) if p["customGladlyAgentId"] == agent)
        assert (n, social, team) == (
            handled[agent],
            sent[person["workEmail"]],
            person["department"],
        )
    assert sorted(dashboard) == ["ag_01", "ag_02", "ag_03", "ag_04", "ag_05"]


def test_cnd_email_report_counts_and_medians_match_the_export(
    estate_run: tuple[Any, Path, dict[str, str]],
) -> None:
    estate, home, _ = estate_run
    windows = {d - timedelta(days=1) for d in estate.dates}
    items = [
        json.loads(line)
        for blob in estate.cnd.files.values()
        for line in blob.decode().splitlines()
        if _day(json.loads(line)["timestamp"]) in windows  # what the loaded windows hold
    ]
    by_conv: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_conv[item["conversationId"]].append(item)
    created: dict[tuple[date, str], list[float | None]] = defaultdict(list)
    closed: dict[tuple[date, str], list[float]] = defaultdict(list)
    for conv in by_conv.values():
        first = min(
            (i for i in conv if i["initiator"]["type"] == "CUSTOMER"), key=lambda i: i["timestamp"]
        )
        t0, inbox = datetime.fromisoformat(first["timestamp"]), first["content"]["to"][0]
        answers = [i for i in conv if i["content"]["type"] == "EMAIL" and i["initiator"]["type"] == "AGENT"]  # fmt: skip
        wait = (
            (datetime.fromisoformat(min(a["timestamp"] for a in answers)) - t0).total_seconds()
            if answers
            else None
        )
        created[(_day(first["timestamp"]), inbox)].append(wait)
        for c in conv:
            if c["content"].get("status") == "CLOSED":
                at = datetime.fromisoformat(c["timestamp"])
                closed[(_day(c["timestamp"]), inbox)].append((at - t0).total_seconds())
    rows = _query(home, "CND_DB", 'SELECT * FROM "GOLD"."RPT_EMAIL_DAILY"')
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert set(got) == set(created) | set(closed)
    for key, (n_created, n_closed, median_wait, median_resolution) in got.items():
        waits = [w for w in created.get(key, []) if w is not None]
        assert n_created == len(created.get(key, []))
        assert n_closed == len(closed.get(key, []))
        assert median_wait == (statistics.median(waits) if waits else None)
        assert median_resolution == (statistics.median(closed[key]) if key in closed else None)
    assert sum(r[3] for r in rows) > 0 and sum(r[2] for r in rows) == len(by_conv)


def test_plan_and_status_show_the_cross_database_reads(
    estate_run: tuple[Any, Path, dict[str, str]],
) -> None:
    _, _, env = estate_run
    plan = json.loads(estate_data.xoelt(env, "plan", "warbyparker/sprout_messages_daily", "--date", "2026-11-03", "--format", "json", quiet=True))  # fmt: skip
    gold = {g["name"]: g for g in plan["gold"]}
    assert [g["name"] for g in plan["gold"]] == ["fct_contacts", "agg_agent_daily", "rpt_agent_dashboard"]  # fmt: skip
    assert gold["rpt_agent_dashboard"]["reads"] == ["CORE_DB.GOLD.DIM_AGENTS"]
    assert (gold["agg_agent_daily"]["depends_on"], gold["agg_agent_daily"]["reads"]) == (
        ["fct_contacts"],
        [],
    )
    text = estate_data.xoelt(env, "plan", "condenast/gladly_conversations_daily", "--date", "2026-11-03", quiet=True)  # fmt: skip
    assert "CND_DB.GOLD.FCT_CONVERSATIONS ← CORE_DB.GOLD.DIM_AGENTS" in text
    for database, name in estate_data.PIPELINES:
        status = json.loads(estate_data.xoelt(env, "status", name, "--format", "json", quiet=True))
        assert {r["status"] for r in status["runs"]} == {"success"}, name
        assert all(t["table"].startswith(database) and t["rows"] for t in status["tables"]), name


def test_a_missing_cross_database_table_fails_naming_table_and_database(tmp_path: Path) -> None:
    estate = estate_data.Estate(estate_data.run_dates(1))
    with pytest.raises(estate_data.XoeltFailed) as failed:  # WBP_DB before CORE_DB ever ran
        estate_data.run_estate(
            estate, tmp_path / "home", pipelines=[estate_data.PIPELINES[1]], echo=False
        )
    assert failed.value.code == 1
    assert (
        "gold model fct_contacts (sql/gold/warbyparker/fct_contacts.sql) reads "
        "CORE_DB.GOLD.DIM_AGENTS, which does not exist: run the pipelines of database CORE_DB"
    ) in failed.value.stderr


def test_a_database_another_process_writes_is_refused_with_the_reason(
    estate_run: tuple[Any, Path, dict[str, str]], tmp_path: Path
) -> None:
    """DuckDB: a file one process holds read-write cannot be opened by another, even read-only."""
    import duckdb

    estate, home, env = estate_run
    writer = duckdb.connect(str(home / "warehouse" / "CORE_DB.duckdb"))  # a core run, say
    try:
        with pytest.raises(estate_data.XoeltFailed) as failed:
            estate_data.xoelt(env, "transform", "warbyparker/gladly_daily", "--date", estate.dates[-1].isoformat(), quiet=True)  # fmt: skip
    finally:
        writer.close()
    assert failed.value.code == 1
    assert "read-only (to read database CORE_DB)" in failed.value.stderr
    assert "is a pipeline of CORE_DB running now?" in failed.value.stderr


def test_cross_database_gold_on_snowflake(
    tmp_path: Path, fakesnow_kwargs: dict[str, Any], moto_endpoint: str, s3_client: Any
) -> None:
    """CORE_DB's roster and WBP_DB's contacts on the production target (fakesnow + moto):
    fct_contacts reads ``CORE_DB.GOLD.DIM_AGENTS`` by its three-part name."""
    import snowflake.connector

    for database in ("CORE_DB", "WBP_DB"):
        create_database(fakesnow_kwargs, database)
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    for bucket in ("xoelt-ingest", "xoelt-stage"):
        if bucket not in existing:
            s3_client.create_bucket(Bucket=bucket)
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        yaml.safe_dump(
            {"prod": fakesnow_target(fakesnow_kwargs, f"CORE_DB.BRONZE.{STAGE}", moto_endpoint)}
        )
    )
    estate = estate_data.Estate(estate_data.run_dates(1))
    estate_data.run_estate(
        estate,
        tmp_path / "home",
        pipelines=estate_data.PIPELINES[:2],
        args=("--target", "prod"),
        extra_env={
            "XOELT_TARGETS": str(targets),
            "XO_TEST_SNOWFLAKE_PASSWORD": "pw",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
        echo=False,
    )
    con = snowflake.connector.connect(**fakesnow_kwargs)
    try:
        with con.cursor() as cur:
            cur.execute(
                'SELECT c."AGENT_ID", c."EMPLOYEE_ID", a."NAME" FROM "WBP_DB"."GOLD"."FCT_CONTACTS" AS c '
                'JOIN "CORE_DB"."GOLD"."DIM_AGENTS" AS a ON a."AGENT_ID" = c."AGENT_ID"'
            )
            joined = cur.fetchall()
            # the derived rosters: each client's filtered rows of the one bronze table
            cur.execute('SELECT COUNT(*) FROM "CORE_DB"."BRONZE"."BAMBOOHR_EMPLOYEES"')
            bronze = cur.fetchone()
            cur.execute(
                'SELECT "ID", "CUSTOMCLIENT" FROM "CORE_DB"."SILVER"."ROSTER_WARBYPARKER" '
                'WHERE "IS_CURRENT" ORDER BY 1'
            )
            warbyparker = cur.fetchall()
    finally:
        con.close()
    people = estate_data.roster(0)
    assert bronze == (len(people),)
    assert warbyparker == sorted(
        (p["id"], "Warby Parker") for p in people if p["customClient"] == "Warby Parker"
    )
    assert len(warbyparker) < len(people)
    assert len(joined) == len(estate.wbp.sessions)
    employee = {p["customGladlyAgentId"]: p["id"] for p in estate_data.roster(0)}
    assert all(int(e) == employee[a] for a, e, _ in joined)
