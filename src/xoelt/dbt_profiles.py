"""The dbt profile xoelt writes for a target, so a dbt project runs where the pipeline runs.

One builder per warehouse type, in :data:`BUILDERS` (an unknown type is an error listing the
valid ones). The profile is named ``xoelt`` (passed as ``--profile``, overriding the
project's ``profile:``) with one output named after the warehouse type.

- **duckdb** (dbt-duckdb): ``path`` is the pipeline's database file, every other database
  the run touches (its bronze tables') is attached under its own name, so dbt sees the same
  catalogs as xoelt's session (``DEMO_DB.SILVER.WORK_SESSIONS``); the session's time zone is
  UTC, as xoelt's is. The databases of ``transform.reads`` (another pipeline's gold, e.g.
  ``CORE_DB``) are attached read-only; a missing file is a run error naming the database,
  as for xoelt's own gold. One thread: DuckDB has one writer. DuckDB attaches a file once per
  process, so xoelt's own session is released while dbt runs (:func:`holds_files`).
- **snowflake** (dbt-snowflake): account, user, role, warehouse, host/port/protocol and the
  connect timeout from the target; the database is the pipeline's and the schema its gold
  schema; the query tag is xoelt's for the stage. The password is never written: the
  profile says ``{{ env_var('VAR') }}`` for the target's ``${VAR}`` reference, and the
  variable is put in this process's environment for the build if it came from ``.env``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xoelt.errors import ConfigError, RunError

if TYPE_CHECKING:
    from xoelt.runtime import Runtime

PROFILE = "xoelt"


HOLDS_FILES = frozenset({"duckdb"})
"""Warehouse types whose files one process opens once: xoelt's session lets go during dbt."""


def holds_files(warehouse_type: str) -> bool:
    """Whether dbt on this warehouse type opens the files xoelt's own session holds."""
    return warehouse_type in HOLDS_FILES


@dataclass(frozen=True)
class DbtProfile:
    """A generated profile: its output (``target``) and the variables dbt's ``env_var()``
    must find while it runs (names and values; the values never go to disk)."""

    target: str
    output: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = PROFILE

    def yaml(self) -> str:
        """The ``profiles.yml`` text."""
        import yaml

        doc = {self.name: {"target": self.target, "outputs": {self.target: dict(self.output)}}}
        return yaml.safe_dump(doc, sort_keys=False)


def duckdb_profile(rt: Runtime, query_tag: str) -> DbtProfile:
    """dbt-duckdb on the DuckDB files of the run's databases (see the module docstring)."""
    plan = rt.plan
    location = plan.target.warehouse.location
    attach: list[dict[str, Any]] = [
        {"path": location(db), "alias": db} for db in plan.databases if db != plan.database
    ]
    for db in dict.fromkeys(plan.dbt.reads if plan.dbt else ()):
        if db == plan.database or db in plan.databases:
            continue
        if not Path(location(db)).is_file():
            raise RunError(
                f"dbt transform reads database {db} (transform.reads), which does not exist "
                f"at {location(db)}: run the pipelines of database {db} first"
            )
        attach.append({"path": location(db), "alias": db, "read_only": True})
    output: dict[str, Any] = {
        "type": "duckdb",
        "path": location(plan.database),
        "schema": plan.pipeline.globals.snowflake.gold_schema,
        "threads": 1,
        "settings": {"TimeZone": "UTC"},
    }
    if attach:
        output["attach"] = attach
    Path(location(plan.database)).parent.mkdir(parents=True, exist_ok=True)
    return DbtProfile("duckdb", output)


def snowflake_profile(rt: Runtime, query_tag: str) -> DbtProfile:
    """dbt-snowflake with the target's connection settings (see the module docstring)."""
    config: Any = rt.plan.target.warehouse
    output: dict[str, Any] = {
        "type": "snowflake",
        "account": config.account,
        "user": config.user,
        "database": rt.plan.database,
        "schema": rt.plan.pipeline.globals.snowflake.gold_schema,
        "threads": 4,
        "connect_timeout": config.login_timeout,
        "query_tag": query_tag,
        "client_session_keep_alive": False,
    }
    env: dict[str, str] = {}
    if config.password is not None:
        var = config.password.var
        # resolve only to check it is set (a ConfigError naming the variable) and to lend
        # it to dbt's env_var() if it came from .env rather than the process environment
        env[var] = config.password.resolve(rt.env).get_secret_value()
        output["password"] = "{{ env_var('" + var + "') }}"
    if config.private_key_file:
        output["private_key_path"] = config.private_key_file
    for key in ("role", "warehouse", "host", "port", "protocol"):
        if getattr(config, key, None) is not None:
            output[key] = getattr(config, key)
    return DbtProfile("snowflake", output, env=env)


BUILDERS: dict[str, Callable[[Runtime, str], DbtProfile]] = {
    "duckdb": duckdb_profile,
    "snowflake": snowflake_profile,
}


def profile_for(rt: Runtime, query_tag: str) -> DbtProfile:
    """The profile for the run's target warehouse; a ConfigError for a type with none."""
    kind = rt.plan.target.warehouse.type
    builder = BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(
            f"engine dbt cannot write a profile for a {kind} warehouse; valid: "
            f"{', '.join(BUILDERS)} (or give transform.profiles_dir)"
        )
    return builder(rt, query_tag)
