"""``xoelt migrate``: the user's own schema changes, in schemachange's conventions.

Scripts live under ``<sql root>/migrations`` (``$XOELT_SQL``, else ``./sql``), in any
sub-folder; only file names count:

- ``V<version>__<description>.sql``: applied once, in version order. The version is numeric
  parts separated by ``.`` or ``_`` (``1``, ``1.2``, ``1_2_3``, ``20260115``), compared part by
  part as numbers (``1.10`` after ``1.9``); two files with the same version are an error. A
  version lower than the highest one applied that was never applied itself is refused (it
  would run out of order), and so is an applied file whose content changed since.
- ``R__<description>.sql``: re-applied whenever its checksum changes (views, functions), after
  the versioned scripts, in description order.
- ``A__<description>.sql``: applied on every run, last.

Each application is a row of ``<DATABASE>.XOELT.CHANGE_HISTORY`` (VERSION, DESCRIPTION,
SCRIPT, SCRIPT_TYPE, CHECKSUM, EXECUTION_TIME, STATUS, INSTALLED_BY, INSTALLED_ON: the columns
of schemachange's change history table; the checksum is the SHA-224 of the script after
substitution, as schemachange computes it). Each script runs in its own transaction where the
warehouse's DDL is transactional (``Capabilities.transactional_ddl``: DuckDB), its history row
included; on Snowflake every DDL statement commits, so a failing script names the statement
that failed and says the ones before it took effect.

Variables: ``${NAME}`` is replaced by the environment's value of ``NAME`` (no Jinja), except
for names that may hold a secret, which are refused so that no credential ends up in a
script, a checksum or the history: a name with a word ``KEY``, ``PWD``, ``PASS``, ``AUTH`` or
``PRIVATE``, or containing ``SECRET``, ``PASSWORD``, ``PASSWD``, ``PASSPHRASE``, ``TOKEN`` or
``CREDENTIAL``; and any variable the target or a pipeline uses as a credential (its
``${VAR}`` secrets and each source's documented credential variables). An unset variable is
an error naming the file and line.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from xoelt import ledger
from xoelt.config.env import REFERENCE, environment
from xoelt.errors import ConfigError, InputError, WarehouseError
from xoelt.pipelines import PipelineInvalid, discover, load_pipeline
from xoelt.settings import Settings
from xoelt.sources import get_source
from xoelt.sources.base import secret_refs
from xoelt.targets import BoundTarget, resolve_target
from xoelt.warehouse.base import TableRef, Warehouse, iter_statements, literal, quote

_FILE = re.compile(r"^(?P<kind>[VvRrAa])(?P<version>[^_]*(?:_[^_]+)*?)__(?P<desc>.+)\.sql$")
_VERSION = re.compile(r"^\d+(?:[._]\d+)*$")
_SECRET_WORDS = frozenset({"KEY", "PWD", "PASS", "AUTH", "PRIVATE"})
_SECRET_PARTS = ("SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "TOKEN", "CREDENTIAL")
HISTORY_COLUMNS = (
    ("VERSION", "VARCHAR"),
    ("DESCRIPTION", "VARCHAR"),
    ("SCRIPT", "VARCHAR"),
    ("SCRIPT_TYPE", "VARCHAR"),
    ("CHECKSUM", "VARCHAR"),
    ("EXECUTION_TIME", "NUMBER(38,0)"),
    ("STATUS", "VARCHAR"),
    ("INSTALLED_BY", "VARCHAR"),
    ("INSTALLED_ON", "TIMESTAMP_TZ"),
)


@dataclass(frozen=True)
class Script:
    """One change script: its kind (V, R, A), version (V only), description and text."""

    kind: str
    version: str | None
    description: str
    path: Path
    text: str  # after ${VAR} substitution

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version or "")

    @property
    def checksum(self) -> str:
        return hashlib.sha224(self.text.encode("utf-8")).hexdigest()


@dataclass
class Step:
    """What migrate does (or would do) with one script, and why."""

    script: Script
    action: str  # "apply" | "up to date"
    reason: str
    seconds: float | None = None


@dataclass
class MigrateReport:
    """The scripts found, in the order they apply, and the database they apply to."""

    target: str
    database: str
    location: str
    dry_run: bool
    folder: str
    steps: list[Step] = field(default_factory=list)
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "database": self.database,
            "warehouse": self.location,
            "dry_run": self.dry_run,
            "folder": self.folder,
            "scripts": [
                {
                    "script": s.script.name,
                    "type": s.script.kind,
                    "version": s.script.version,
                    "checksum": s.script.checksum,
                    "action": s.action,
                    "reason": s.reason,
                    "seconds": s.seconds,
                }
                for s in self.steps
            ],
        }


def version_key(version: str) -> tuple[int, ...]:
    """``1.10_2`` → ``(1, 10, 2)``: numeric parts, compared as numbers."""
    return tuple(int(part) for part in re.split(r"[._]", version))


def secret_like(name: str) -> bool:
    """Whether a variable name looks like it holds a credential (see the module doc)."""
    upper = name.upper()
    return bool(_SECRET_WORDS & set(upper.split("_"))) or any(p in upper for p in _SECRET_PARTS)


def substitute(text: str, path: Path, env: Mapping[str, str], refused: set[str]) -> str:
    """``${NAME}`` → the environment's value; a secret or unset name is a ConfigError."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        if name in refused or secret_like(name):
            why = "a credential of the target or a pipeline" if name in refused else "secret-like"
            raise ConfigError(
                f"${{{name}}} is {why}: migrations never substitute secrets",
                file=str(path),
                line=line,
            )
        if name not in env:
            raise ConfigError(f"environment variable {name} is not set", file=str(path), line=line)
        return env[name]

    return REFERENCE.sub(replace, text)


def find_scripts(folder: Path, env: Mapping[str, str], refused: set[str]) -> list[Script]:
    """Every change script under ``folder`` in application order (V by version, then R, then
    A by description). Bad names and duplicate versions are ConfigErrors naming the file."""
    scripts: list[Script] = []
    seen: dict[tuple[int, ...], Path] = {}
    for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
        match = _FILE.match(path.name)
        kind = match.group("kind").upper() if match else ""
        version = match.group("version") if match else ""
        if not match or (kind == "V") != bool(version):
            raise ConfigError(
                "not a change script name: V<version>__<description>.sql, "
                "R__<description>.sql or A__<description>.sql",
                file=str(path),
            )
        if kind == "V":
            if not _VERSION.match(version):
                raise ConfigError(
                    f"version {version!r} must be numbers separated by '.' or '_'", file=str(path)
                )
            key = version_key(version)
            if key in seen:
                raise ConfigError(f"version {version} is also {seen[key]}", file=str(path))
            seen[key] = path
        text = substitute(path.read_text(encoding="utf-8"), path, env, refused)
        description = match.group("desc").replace("_", " ").strip().capitalize()
        scripts.append(Script(kind, version if kind == "V" else None, description, path, text))
    order = {"V": 0, "R": 1, "A": 2}
    return sorted(
        scripts, key=lambda s: (order[s.kind], s.key if s.kind == "V" else (), s.description)
    )


def credential_vars(bound: BoundTarget, pipelines: Sequence[Any]) -> set[str]:
    """Variables the target and the pipelines use as credentials (never substituted)."""
    config = bound.warehouse
    found = {ref.var for ref in secret_refs(config)} if isinstance(config, BaseModel) else set()
    for pipeline in pipelines:
        for name, source in pipeline.extracting.items():
            cls = get_source(source.type_name)
            found.update(cls.credential_vars(pipeline.extractor_config(name)))
    return found


def _history(database: str) -> TableRef:
    return TableRef(database, "XOELT", "CHANGE_HISTORY")


def read_history(wh: Warehouse, database: str) -> list[dict[str, Any]]:
    """Successful history rows, oldest first (none when the table does not exist yet)."""
    table = _history(database)
    if wh.table_columns(table) is None:
        return []
    rows = wh.query(
        f'SELECT "VERSION", "SCRIPT", "SCRIPT_TYPE", "CHECKSUM", "INSTALLED_ON" FROM {table.sql} '
        f'WHERE "STATUS" = \'Success\' ORDER BY "INSTALLED_ON"'
    ).rows
    names = ("version", "script", "script_type", "checksum", "installed_on")
    return [dict(zip(names, r, strict=True)) for r in rows]


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def decide(scripts: Sequence[Script], history: Sequence[dict[str, Any]]) -> list[Step]:
    """What to do with each script given the history; refuse changed or out-of-order ones."""
    applied_v = {
        version_key(r["version"]): r for r in history if r["script_type"] == "V" and r["version"]
    }
    latest: dict[str, str] = {r["script"]: r["checksum"] for r in history}  # later rows win
    highest = max(applied_v, default=())
    problems: list[str] = []
    steps: list[Step] = []
    for s in scripts:
        if s.kind == "V":
            done = applied_v.get(s.key)
            if done is not None:
                if done["checksum"] != s.checksum:
                    problems.append(
                        f"{s.path}: version {s.version} was applied on {_when(done['installed_on'])} "
                        "and its content has changed since; a versioned migration is applied "
                        "once: restore it and put the change in a new V file"
                    )
                steps.append(Step(s, "up to date", f"applied on {_when(done['installed_on'])}"))
            elif s.key < highest:
                top = ".".join(map(str, highest))
                problems.append(
                    f"{s.path}: version {s.version} was never applied and is older than the "
                    f"latest applied version {top}; give it a version above {top}"
                )
            else:
                steps.append(Step(s, "apply", "new version"))
        elif s.kind == "R":
            before = latest.get(s.name)
            if before == s.checksum:
                steps.append(Step(s, "up to date", "checksum unchanged"))
            else:
                steps.append(Step(s, "apply", "new" if before is None else "checksum changed"))
        else:
            steps.append(Step(s, "apply", "always"))
    if problems:
        raise InputError("migrations refused: " + "; ".join(problems))
    return steps


def _apply(wh: Warehouse, database: str, script: Script) -> float:
    """Run one script (in a transaction where DDL is transactional) and record it."""
    statements = list(iter_statements(script.text))
    t0 = time.perf_counter()

    def run_all() -> None:
        for number, statement in enumerate(statements, start=1):
            try:
                wh.query(statement)
            except WarehouseError as exc:
                kept = ""
                if not wh.capabilities.transactional_ddl and number > 1:
                    kept = (
                        f"; statements 1-{number - 1} took effect "
                        f"({wh.capabilities.dialect} commits DDL as it runs)"
                    )
                raise exc.prefixed(
                    f"{script.name} statement {number} of {len(statements)} failed: ",
                    kept or "; nothing of it was kept",
                ) from exc
        seconds = time.perf_counter() - t0
        values = [
            literal(script.version) if script.version else "NULL",
            literal(script.description),
            literal(script.name),
            literal(script.kind),
            literal(script.checksum),
            str(round(seconds)),
            literal("Success"),
            literal(ledger.who()),
            f"{literal(datetime.now(UTC).isoformat())}::TIMESTAMP_TZ",
        ]
        wh.query(f"INSERT INTO {_history(database).sql} VALUES ({', '.join(values)})")

    if wh.capabilities.transactional_ddl:
        with wh.transaction():
            run_all()
    else:
        run_all()
    return round(time.perf_counter() - t0, 3)


def migrate(
    target: str | None = None,
    *,
    dry_run: bool = False,
    database: str | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
) -> MigrateReport:
    """Apply (or, with ``dry_run``, list) the pending change scripts to ``database``.

    ``database`` defaults to the one the pipelines under the pipelines root share. Every
    script is read and checked, and the history compared, before anything is applied.
    """
    settings = settings or Settings.from_env()
    env = environment() if env is None else env
    target_name, bound = resolve_target(target, settings)
    pipelines = []
    for path in discover(settings.pipelines_root):
        try:
            pipelines.append(load_pipeline(path, env))
        except PipelineInvalid:
            continue  # `validate` reports it; its credentials are still refused by pattern
    databases = sorted({p.globals.snowflake.database for p in pipelines})
    if database is None:
        if len(databases) != 1:
            found = f"they name {', '.join(databases)}" if databases else "none was found"
            raise InputError(
                f"give --database: the pipelines under {settings.where('pipelines')} must "
                f"share one database to default to it ({found})"
            )
        database = databases[0]
    database = database.upper()
    quote(database)  # a valid identifier, or ValueError before any connection
    folder = settings.sql_root / "migrations"
    scripts = find_scripts(folder, env, credential_vars(bound, pipelines))
    report = MigrateReport(
        target_name, database, bound.warehouse.location(database), dry_run, settings.where("sql")
    )
    wh = bound.warehouse.open(sorted({database, *databases}), database, env)
    try:
        history = read_history(wh, database)
        report.steps = decide(scripts, history)
        if dry_run:
            return report
        ledger.apply_migrations(wh, database)
        columns = ", ".join(f"{quote(n)} {t}" for n, t in HISTORY_COLUMNS)
        wh.query(f"CREATE TABLE IF NOT EXISTS {_history(database).sql} ({columns})")
        for step in report.steps:
            if step.action == "apply":
                step.seconds = _apply(wh, database, step.script)
                step.action = "applied"
    finally:
        wh.close()
    return report
