"""Migrations and the run ledger (who ran what window, rows in/out, status), in the warehouse.

Migrations are ``sql/migrations/V<NNN>__<name>.sql`` files (``$XOELT_SQL`` moves ``sql/``),
applied once per database in version order and recorded in ``XOELT.SCHEMA_MIGRATIONS``. They
run in the warehouse session's database (the pipeline's, which the runtime opens the session
in), so their names are schema-qualified (``"XOELT"."RUN_LEDGER"``) and the files are run
as written.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xoelt.redact import redact
from xoelt.warehouse.base import Warehouse, execute, iter_statements, literal, quote

LEDGER_COLUMNS = (
    "run_id",
    "source",
    "stage",
    "window_start",
    "status",
    "rows",
    "finished_at",
    "message",
    "details",
)


def _table(database: str) -> str:
    return f"{quote(database)}.{quote('XOELT')}.{quote('RUN_LEDGER')}"


def _migrations(sql_root: Path) -> list[tuple[str, str]]:
    folder = sql_root / "migrations"
    files = sorted(folder.glob("V*__*.sql")) if folder.is_dir() else []
    return [(f.name.split("__", 1)[0], f.read_text(encoding="utf-8")) for f in files]


def apply_migrations(warehouse: Warehouse, database: str, sql_root: Path) -> list[str]:
    """Apply pending migrations (``sql_root/migrations``) to ``database``, the session's
    database; return the versions applied."""
    db = quote(database)
    execute(warehouse, f"CREATE SCHEMA IF NOT EXISTS {db}.{quote('XOELT')}")
    execute(
        warehouse,
        f"CREATE TABLE IF NOT EXISTS {db}.{quote('XOELT')}.{quote('SCHEMA_MIGRATIONS')} "
        f"({quote('VERSION')} VARCHAR, {quote('APPLIED_AT')} TIMESTAMP_TZ)",
    )
    done = {
        r[0]
        for r in execute(
            warehouse,
            f"SELECT {quote('VERSION')} FROM {db}.{quote('XOELT')}.{quote('SCHEMA_MIGRATIONS')}",
        )
    }
    applied = []
    for version, text in _migrations(sql_root):
        if version in done:
            continue
        for stmt in iter_statements(text):
            execute(warehouse, stmt)
        execute(
            warehouse,
            f"INSERT INTO {db}.{quote('XOELT')}.{quote('SCHEMA_MIGRATIONS')} VALUES "
            f"({literal(version)}, {literal(datetime.now(UTC).isoformat())}::TIMESTAMP_TZ)",
        )
        applied.append(version)
    return applied


def record(
    warehouse: Warehouse,
    database: str,
    *,
    run_id: str,
    pipeline: str,
    source: str,
    stage: str,
    window_start: str,
    window_end: str,
    status: str,
    started_at: datetime,
    rows: int | None = None,
    message: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one ledger row. ``message`` is an error's one-line text, which holds no secrets."""
    table = _table(database)
    values = [
        literal(run_id),
        literal(pipeline),
        literal(source),
        literal(stage),
        f"{literal(window_start)}::TIMESTAMP_TZ",
        f"{literal(window_end)}::TIMESTAMP_TZ",
        literal(status),
        "NULL" if rows is None else str(int(rows)),
        literal(redact(message)[:2000]),
        literal(redact(json.dumps(details or {}, sort_keys=True, default=str))),
        literal(_who()),
        f"{literal(started_at.isoformat())}::TIMESTAMP_TZ",
        f"{literal(datetime.now(UTC).isoformat())}::TIMESTAMP_TZ",
    ]
    execute(warehouse, f"INSERT INTO {table} VALUES ({', '.join(values)})")


def last_success(
    warehouse: Warehouse, database: str, pipeline: str, source: str, stage: str, window_start: str
) -> bool:
    """Whether the latest ledger row of this pipeline/source/stage/window is a success."""
    table = _table(database)
    rows = execute(
        warehouse,
        f"SELECT {quote('STATUS')} FROM {table} WHERE {quote('PIPELINE')} = {literal(pipeline)} "
        f"AND {quote('SOURCE')} = {literal(source)} AND {quote('STAGE')} = {literal(stage)} "
        f"AND {quote('WINDOW_START')} = {literal(window_start)}::TIMESTAMP_TZ "
        f"ORDER BY {quote('FINISHED_AT')} DESC LIMIT 1",
    )
    return bool(rows) and rows[0][0] == "success"


def window_complete(
    warehouse: Warehouse,
    database: str,
    pipeline: str,
    window_start: str,
    required: Iterable[tuple[str, str]],
) -> bool:
    """Whether the latest run that touched this window succeeded at every required
    ``(source, stage)`` — a run killed before its gold, or one that ran a stage alone
    later, leaves the window not done."""
    table = _table(database)
    name, start = literal(pipeline), f"{literal(window_start)}::TIMESTAMP_TZ"
    rows = execute(
        warehouse,
        f'SELECT "SOURCE", "STAGE", "STATUS" FROM {table} WHERE "PIPELINE" = {name} '
        f'AND "WINDOW_START" = {start} AND "RUN_ID" = (SELECT "RUN_ID" FROM {table} '
        f'WHERE "PIPELINE" = {name} AND "WINDOW_START" = {start} '
        f'ORDER BY "FINISHED_AT" DESC LIMIT 1)',
    )
    succeeded = {(r[0], r[1]) for r in rows if r[2] == "success"}
    failed = {(r[0], r[1]) for r in rows if r[2] != "success"}
    return bool(rows) and not failed and set(required) <= succeeded


def latest_run(warehouse: Warehouse, database: str, pipeline: str) -> list[dict[str, Any]]:
    """The ledger rows of the pipeline's most recent run, in the order they finished."""
    table = _table(database)
    name = literal(pipeline)
    rows = execute(
        warehouse,
        f'SELECT "RUN_ID", "SOURCE", "STAGE", "WINDOW_START", "STATUS", "ROWS", "FINISHED_AT", '
        f'"MESSAGE", "DETAILS" '
        f'FROM {table} WHERE "PIPELINE" = {name} AND "RUN_ID" = (SELECT "RUN_ID" FROM {table} '
        f'WHERE "PIPELINE" = {name} ORDER BY "FINISHED_AT" DESC LIMIT 1) ORDER BY "FINISHED_AT"',
    )
    out = []
    for r in rows:
        row = dict(zip(LEDGER_COLUMNS, r, strict=True))
        row["details"] = _parse_details(row["details"])
        out.append(row)
    return out


def _parse_details(raw: Any) -> dict[str, Any]:
    """A ledger DETAILS value as a dict (an unreadable one as ``{}``: it is informational)."""
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
