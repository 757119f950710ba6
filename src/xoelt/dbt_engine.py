"""dbt as the transform engine: ``transform: {engine: dbt, project_dir: …}`` runs ``dbt build``.

After silver, in this process, through dbt-core's programmatic runner (``dbtRunner``), with
the run's window as dbt vars (:data:`xoelt.dbt_project.WINDOW_VARS`). ``build`` runs the selected models and
their tests; each node's result becomes findings on the gold stage's ledger row (models
built, tests passed, warned, failed) and any failed node, or a dbt exception, fails the run
with one line naming the nodes.

The profile: unless the pipeline names its own ``profiles_dir``, xoelt writes one for the
target into a temporary directory (:mod:`xoelt.dbt_profiles`) and passes ``--profile xoelt``.
On DuckDB that profile opens the pipeline's database file itself; DuckDB lets one process
attach a file only once (a second ``ATTACH`` of it, in another instance, is a "Unique file
handle conflict"), so xoelt's own session is released before dbt runs and reopened after it
(the ledger row is written on the new session), and dbt-duckdb's cached environment is
closed when dbt returns.

dbt's console output is off (``--log-level none``); its warnings and errors reach xoelt's
structured log through an event callback, and its full debug log, ``target/`` artifacts and
partial-parse cache live under ``$XOELT_HOME/dbt/<domain>/<pipeline>/``, never in the
project folder. dbt itself is imported only here, and only when a dbt transform runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xoelt.errors import ConfigError, DataTestFailed, RunError
from xoelt.findings import Finding

if TYPE_CHECKING:
    from xoelt.dbt_project import DbtPlan
    from xoelt.runtime import Runtime

INSTALL_HINT = {"duckdb": "xoelt[dbt]", "snowflake": "xoelt[dbt-snowflake]"}
_FAILED = {"error", "fail"}
_BUILT = {"model", "seed", "snapshot"}
_SAID = {"fail": "failed", "warn": "warned"}
MAX_NAMED = 5  # failed nodes named in the run's one-line error (all are findings)


@dataclass(frozen=True)
class DbtOutcome:
    """What ``dbt build`` did: rows per model built (counted after the build), and findings
    (one summary, plus one per node that did not pass)."""

    models: dict[str, int]
    findings: tuple[Finding, ...]


def run(rt: Runtime, plan: DbtPlan, log: Any) -> DbtOutcome:
    """Run ``dbt build`` for the run's window; raise (with the findings) if any node failed."""
    from xoelt.dbt_profiles import holds_files, profile_for

    warehouse_type = rt.plan.target.warehouse.type
    runner = _runner(rt, warehouse_type)
    work = rt.home / "dbt" / rt.plan.pipeline.dag.domain / rt.plan.pipeline.dag.pipeline_name
    run_vars = plan.vars_for(rt.plan.window, rt.plan.run_at, rt.run_id)
    args = [
        "build",
        "--project-dir",
        str(plan.project_dir),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        json.dumps(run_vars, default=str),
        "--log-level",
        "none",
        "--log-level-file",
        "debug",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]
    for option, values in (("--select", plan.select), ("--exclude", plan.exclude)):
        if values:
            args += [option, *values]
    # DuckDB: dbt opens the same files itself (through our profile or the user's)
    exclusive = holds_files(warehouse_type)
    lent: Mapping[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="xoelt-dbt-") as tmp:
        if plan.profiles_dir is not None:
            args += ["--profiles-dir", str(plan.profiles_dir)]
            if plan.target:
                args += ["--target", plan.target]
        else:
            profile = profile_for(rt, rt.query_tag("transform", "gold"))
            (Path(tmp) / "profiles.yml").write_text(profile.yaml(), encoding="utf-8")
            args += ["--profiles-dir", tmp, "--profile", profile.name, "--target", profile.target]
            lent = profile.env
        if exclusive:
            rt.release_warehouse()
        log.info("dbt build", project=str(plan.project_dir), select=" ".join(plan.select))
        try:
            with _lent_environment(lent):
                result = runner(callbacks=[_log_events(log)]).invoke(args)
        finally:
            if exclusive:
                _close_duckdb_environment()
    if result.exception is not None and not isinstance(result.exception, Exception):
        raise result.exception  # a signal's Interrupted (dbtRunner catches BaseException)
    findings, failed, built = _findings(result)
    if result.exception is not None and not failed:
        # dbt's messages span lines ("Compilation Error\n  Model … depends on …"): one line
        said = " ".join(str(result.exception).split())[:400] or type(result.exception).__name__
        raise RunError(f"dbt build failed: {said}", findings=findings)
    if failed:
        tests = [f for f in failed if f.data.get("resource_type") == "test"]
        kind = DataTestFailed if tests and len(tests) == len(failed) else RunError
        names = "; ".join(f.message for f in failed[:MAX_NAMED])
        if len(failed) > MAX_NAMED:
            names += f"; and {len(failed) - MAX_NAMED} more (see xoelt status)"
        raise kind(f"dbt build failed: {names}", findings=findings)
    models = {name: _count(rt, relation) for name, relation in built}
    for name, rows in models.items():
        log.info("gold", model=name, engine="dbt", rows=rows)
    return DbtOutcome(models, findings)


def _runner(rt: Runtime, warehouse_type: str) -> Callable[..., Any]:
    """dbt-core's runner class, with the adapter the target needs; a ConfigError naming the
    extra to install when either is missing."""
    import importlib

    extra = INSTALL_HINT.get(warehouse_type, "xoelt[dbt]")
    path = rt.plan.pipeline.path
    try:
        from dbt.cli.main import dbtRunner
    except ImportError:
        raise ConfigError(
            f"engine dbt needs dbt-core: pip install '{extra}'",
            file=str(path) if path else None,
            key="transform.engine",
        ) from None
    try:
        importlib.import_module(f"dbt.adapters.{warehouse_type}")
    except ImportError:
        raise ConfigError(
            f"engine dbt on a {warehouse_type} target needs dbt-{warehouse_type}: "
            f"pip install '{extra}'",
            file=str(path) if path else None,
            key="transform.engine",
        ) from None
    return dbtRunner


@contextlib.contextmanager
def _lent_environment(values: Mapping[str, str]) -> Generator[None]:
    """Variables dbt's ``env_var()`` reads, set in this process only while dbt runs (those
    already set are left alone); nothing is written to disk."""
    added = [k for k in values if k not in os.environ]
    for key in added:
        os.environ[key] = values[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _log_events(log: Any) -> Callable[[Any], None]:
    """dbt's warnings and errors as structured log lines (its console output is off)."""

    def hear(event: Any) -> None:
        # dbt runs callbacks on its worker threads, where an exception would stall the build
        with contextlib.suppress(Exception):
            info = event.info
            if info.level in ("warn", "error"):
                log.warning(
                    "dbt", dbt_event=info.name, dbt_level=info.level, message=info.msg[:500]
                )

    return hear


def _close_duckdb_environment() -> None:
    """Release the DuckDB files dbt-duckdb keeps open in its process-wide environment, so
    xoelt's session can attach them again."""
    with contextlib.suppress(ImportError):
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        with DuckDBConnectionManager._LOCK:
            env = DuckDBConnectionManager._ENV
            if env is not None:
                with contextlib.suppress(Exception):
                    env.close()
            DuckDBConnectionManager._ENV = None


def _findings(result: Any) -> tuple[tuple[Finding, ...], list[Finding], list[tuple[str, str]]]:
    """(all findings, the failed nodes' findings, (name, relation) of each model built)."""
    nodes = getattr(getattr(result, "result", None), "results", None) or []
    counts = {"built": 0, "passed": 0, "warned": 0, "failed": 0, "skipped": 0}
    lists: dict[str, list[str]] = {k: [] for k in counts}
    per_node: list[Finding] = []
    failed: list[Finding] = []
    built: list[tuple[str, str]] = []
    for item in nodes:
        node = item.node
        kind, status = str(node.resource_type), str(item.status)
        if status in _FAILED:
            bucket = "failed"
        elif status == "warn":
            bucket = "warned"
        elif status == "skipped":
            bucket = "skipped"
        else:
            bucket = "built" if kind in _BUILT else "passed"
        counts[bucket] += 1
        lists[bucket].append(node.unique_id)
        if bucket == "built" and kind == "model" and node.relation_name:
            built.append((node.name, node.relation_name))
        if bucket in ("failed", "warned", "skipped"):
            finding = _node_finding(item, kind, status, bucket)
            per_node.append(finding)
            if bucket == "failed":
                failed.append(finding)
    summary = Finding(
        "dbt_build",
        f"dbt build: {counts['built']} built, {counts['passed']} tests passed, "
        f"{counts['warned']} warned, {counts['failed']} failed, {counts['skipped']} skipped",
        "error" if failed else "warn" if counts["warned"] else "info",
        count=len(nodes),
        data={"counts": counts, **{k: v for k, v in lists.items() if v}},
    )
    return (summary, *per_node), failed, built


def _node_finding(item: Any, kind: str, status: str, bucket: str) -> Finding:
    """One node that did not pass: ``test not_null_fct_x_id failed (3 rows)``."""
    node = item.node
    failures = getattr(item, "failures", None)
    rows = f" ({failures} failing rows)" if kind == "test" and failures else ""
    detail = ""
    if kind != "test" and item.message and status != "skipped":
        detail = ": " + str(item.message).strip().splitlines()[0][:300]
    return Finding(
        f"dbt_{kind}",
        f"{kind} {node.name} {_SAID.get(status, status)}{rows}{detail}",
        "error" if bucket == "failed" else "warn",
        count=failures if kind == "test" else None,
        data={"unique_id": node.unique_id, "resource_type": kind, "status": status},
    )


def _count(rt: Runtime, relation: str) -> int:
    """Rows of a model dbt built (``relation`` is dbt's own quoted name for it)."""
    from xoelt.warehouse.base import execute

    return int(execute(rt.warehouse, f"SELECT COUNT(*) FROM {relation}")[0][0])
