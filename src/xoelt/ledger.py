"""xoelt's own migrations and the run ledger (who ran what window, rows in/out, status).

xoelt's migrations ship inside the package (``xoelt/migrations/V<NNN>__<name>.sql``), so an
installed wheel has them wherever it runs; :data:`LEDGER_MIGRATIONS` lists every one the code
relies on, and a missing file is an error (never skipped: the ledger would silently not be
written). They are applied once per database in version order and recorded in
``XOELT.SCHEMA_MIGRATIONS`` (the table and its rows are the same as when they lived under
``sql/migrations``, so an existing ledger database is recognised and nothing re-runs). They
run in the warehouse session's database (the pipeline's), so their names are
schema-qualified (``"XOELT"."RUN_LEDGER"``) and the files are run as written. The user's own
schema changes are :mod:`xoelt.migrate`'s.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from xoelt.errors import RunError, WarehouseError
from xoelt.redact import redact
from xoelt.warehouse.base import Warehouse, execute, iter_statements, literal, quote

LEDGER_MIGRATIONS = ("V001", "V002")
"""Every migration of xoelt's own tables, in order; each must ship in ``xoelt/migrations``."""

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


def packaged_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of each of :data:`LEDGER_MIGRATIONS`, read from the installed package.

    A missing or duplicated file is a RunError naming the folder: an install without them
    would run without a ledger.
    """
    folder = resources.files("xoelt") / "migrations"
    found: dict[str, list[str]] = {}
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.endswith(".sql") and "__" in entry.name:
                found.setdefault(entry.name.split("__", 1)[0], []).append(entry.name)
    out = []
    for version in LEDGER_MIGRATIONS:
        names = found.get(version, [])
        if len(names) != 1:
            what = "is missing from" if not names else f"is in {len(names)} files in"
            raise RunError(
                f"xoelt's ledger migration {version} {what} {folder}; the installation is "
                "incomplete: reinstall xoelt"
            )
        out.append((version, (folder / names[0]).read_text(encoding="utf-8")))
    return out


def apply_migrations(warehouse: Warehouse, database: str) -> list[str]:
    """Apply xoelt's pending migrations to ``database``, the session's database; return the
    versions applied."""
    pending = packaged_migrations()  # before any statement: an incomplete install changes nothing
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
    for version, text in pending:
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


def _reading(database: str, exc: WarehouseError) -> WarehouseError:
    """A failed read of the ledger, said as one (not as the load or stage around it)."""
    table = f"{database}.XOELT.RUN_LEDGER"
    return WarehouseError(f"reading the run ledger {table} failed: {exc.message}")


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
        literal(who()),
        f"{literal(started_at.isoformat())}::TIMESTAMP_TZ",
        f"{literal(datetime.now(UTC).isoformat())}::TIMESTAMP_TZ",
    ]
    execute(warehouse, f"INSERT INTO {table} VALUES ({', '.join(values)})")


def last_success(
    warehouse: Warehouse, database: str, pipeline: str, source: str, stage: str, window_start: str
) -> bool:
    """Whether the latest ledger row of this pipeline/source/stage/window is a success."""
    table = _table(database)
    try:
        rows = execute(
            warehouse,
            f"SELECT {quote('STATUS')} FROM {table} WHERE {quote('PIPELINE')} = {literal(pipeline)} "
            f"AND {quote('SOURCE')} = {literal(source)} AND {quote('STAGE')} = {literal(stage)} "
            f"AND {quote('WINDOW_START')} = {literal(window_start)}::TIMESTAMP_TZ "
            f"ORDER BY {quote('FINISHED_AT')} DESC LIMIT 1",
        )
    except WarehouseError as exc:
        raise _reading(database, exc) from exc
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
    try:
        rows = execute(
            warehouse,
            f'SELECT "SOURCE", "STAGE", "STATUS" FROM {table} WHERE "PIPELINE" = {name} '
            f'AND "WINDOW_START" = {start} AND "RUN_ID" = (SELECT "RUN_ID" FROM {table} '
            f'WHERE "PIPELINE" = {name} AND "WINDOW_START" = {start} '
            f'ORDER BY "FINISHED_AT" DESC LIMIT 1)',
        )
    except WarehouseError as exc:
        raise _reading(database, exc) from exc
    succeeded = {(r[0], r[1]) for r in rows if r[2] == "success"}
    failed = {(r[0], r[1]) for r in rows if r[2] != "success"}
    return bool(rows) and not failed and set(required) <= succeeded


def previous_run_failed(
    warehouse: Warehouse, database: str, pipeline: str, run_id: str
) -> bool | None:
    """Whether the pipeline's latest run other than ``run_id`` has a failed row (None: no
    earlier run). What makes a successful run a *recovery*."""
    table = _table(database)
    name, this = literal(pipeline), literal(run_id)
    try:
        rows = execute(
            warehouse,
            f'SELECT "STATUS" FROM {table} WHERE "PIPELINE" = {name} AND "RUN_ID" = '
            f'(SELECT "RUN_ID" FROM {table} WHERE "PIPELINE" = {name} AND "RUN_ID" <> {this} '
            f'ORDER BY "FINISHED_AT" DESC LIMIT 1)',
        )
    except WarehouseError as exc:
        raise _reading(database, exc) from exc
    if not rows:
        return None
    return any(r[0] == "failed" for r in rows)


def window_runs(
    warehouse: Warehouse, database: str, pipeline: str, window_start: str
) -> list[tuple[str, str, str, str, datetime]]:
    """Every ledger row of this window: (run id, source, stage, status, finished at), in
    the order they finished."""
    table = _table(database)
    try:
        rows = execute(
            warehouse,
            f'SELECT "RUN_ID", "SOURCE", "STAGE", "STATUS", "FINISHED_AT" FROM {table} '
            f'WHERE "PIPELINE" = {literal(pipeline)} '
            f'AND "WINDOW_START" = {literal(window_start)}::TIMESTAMP_TZ ORDER BY "FINISHED_AT"',
        )
    except WarehouseError as exc:
        raise _reading(database, exc) from exc
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4]) for r in rows]


def latest_run(warehouse: Warehouse, database: str, pipeline: str) -> list[dict[str, Any]]:
    """The ledger rows of the pipeline's most recent run, in the order they finished."""
    table = _table(database)
    name = literal(pipeline)
    try:
        rows = execute(
            warehouse,
            f'SELECT "RUN_ID", "SOURCE", "STAGE", "WINDOW_START", "STATUS", "ROWS", "FINISHED_AT", '
            f'"MESSAGE", "DETAILS" '
            f'FROM {table} WHERE "PIPELINE" = {name} AND "RUN_ID" = (SELECT "RUN_ID" FROM {table} '
            f'WHERE "PIPELINE" = {name} ORDER BY "FINISHED_AT" DESC LIMIT 1) ORDER BY "FINISHED_AT"',
        )
    except WarehouseError as exc:
        raise _reading(database, exc) from exc
    out = []
    for r in rows:
        row = dict(zip(LEDGER_COLUMNS, r, strict=True))
        row["details"] = _parse_details(row["details"])
        # NUMBER(38,0) comes back as a Decimal (DuckDB) or int: a count either way
        row["rows"] = None if row["rows"] is None else int(row["rows"])
        out.append(row)
    return out


def _parse_details(raw: Any) -> dict[str, Any]:
    """A ledger DETAILS value as a dict (an unreadable one as ``{}``: it is informational)."""
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def who() -> str:
    """``user@host`` of this process: who ran a stage or applied a migration."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
