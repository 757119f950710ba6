"""``xoelt doctor``: can this target run these pipelines? One pass/fail row per thing checked.

Checks, in order (a row is ``skip`` when what it needs already failed):

- **credentials**: every environment variable the target and each source reads credentials
  from is set (names only, never values), and a ``private_key_file`` exists;
- **bucket**: each ingest and stage bucket is reachable and writable: a probe object is
  written under ``xoelt-doctor/``, read back and removed;
- **warehouse**: it opens in the pipelines' database, and the session is what the target
  asks for (Snowflake: ``CURRENT_ROLE()``, ``CURRENT_WAREHOUSE()``, ``CURRENT_DATABASE()``;
  DuckDB: the file opens);
- **stage**: where the target loads through an external stage, the stage exists, points at
  the stage bucket, and its storage integration (if it names one) exists and is enabled;
- **source**: one cheap authenticated call per source (``Source.probe``).

Every check runs with a deadline (``timeout`` seconds): a check still waiting then fails
with "no answer within …" (its thread is abandoned; it is a daemon and dies with the
process). Details are error messages, which hold no secrets, and are redacted once more
against the credential values in the environment.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from xoelt.config.env import environment
from xoelt.config.models import Pipeline
from xoelt.errors import InputError, RunError, XoeltError
from xoelt.logging import get_logger
from xoelt.migrate import secret_like
from xoelt.pipelines import PipelineInvalid, discover, load_pipeline, resolve
from xoelt.settings import Settings
from xoelt.sources import get_source
from xoelt.sources.base import ExtractContext, secret_refs
from xoelt.sources.http import redact
from xoelt.storage.base import ObjectStore
from xoelt.targets import BoundTarget, resolve_target
from xoelt.timewindow import align_to_schedule, resolve_window
from xoelt.warehouse.base import Warehouse, quote

T = TypeVar("T")
DEFAULT_TIMEOUT = 20.0
PROBE_PREFIX = "xoelt-doctor/"
# What the session is, per dialect (engine differences as data): Snowflake names its role,
# warehouse and database; an embedded engine has only the database.
SESSION_QUERY = {"snowflake": "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE(), CURRENT_DATABASE()"}
SESSION_COLUMNS = {"snowflake": ("role", "warehouse", "database")}


@dataclass
class Check:
    """One row: what was checked, on what, the outcome (pass/fail/skip) and why."""

    check: str
    subject: str
    status: str
    detail: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DoctorReport:
    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": not self.failed,
            "checks": [c.as_dict() for c in self.checks],
        }


class _Deadline(RunError):
    """A check that did not finish in time."""


def bounded(fn: Callable[[], T], timeout: float) -> T:
    """``fn()`` in a daemon thread; its result, its exception, or _Deadline after ``timeout``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, name="xoelt-doctor", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _Deadline(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class _Doctor:
    def __init__(
        self,
        report: DoctorReport,
        bound: BoundTarget,
        env: Mapping[str, str],
        timeout: float,
    ) -> None:
        self.report, self.bound, self.env, self.timeout = report, bound, env, timeout
        self.secrets: list[str] = []

    def run(self, check: str, subject: str, fn: Callable[[], str | None]) -> bool:
        """Run ``fn`` bounded; record pass (its detail), skip (it returned None) or fail."""
        t0 = time.perf_counter()
        try:
            detail = bounded(fn, self.timeout)
            status = "skip" if detail is None else "pass"
        except XoeltError as exc:
            status, detail = "fail", str(exc)
        except Exception as exc:  # an adapter's unmapped error: still one line, still a failure
            status, detail = "fail", f"{type(exc).__name__}: {exc}"
        self.add(check, subject, status, detail or "", time.perf_counter() - t0)
        return status == "pass"

    def add(self, check: str, subject: str, status: str, detail: str, seconds: float = 0) -> None:
        clean = redact(" ".join(detail.split()), *self.secrets)
        self.report.checks.append(Check(check, subject, status, clean, round(seconds, 3)))

    def credentials(self, subject: str, variables: Sequence[str], files: Sequence[str]) -> bool:
        """A row for the variables (and files) a subject's credentials come from."""
        missing = [v for v in variables if not self.env.get(v)]
        absent = [f for f in files if not Path(f).expanduser().is_file()]
        self.secrets += [
            self.env[v] for v in variables if secret_like(v) and len(self.env.get(v, "")) > 3
        ]
        if not variables and not files:
            self.add("credentials", subject, "pass", "none needed")
            return True
        if missing or absent:
            parts = [f"{v} is not set" for v in missing] + [f"{f} does not exist" for f in absent]
            self.add("credentials", subject, "fail", "; ".join(parts))
            return False
        self.add("credentials", subject, "pass", ", ".join([*variables, *files]) + " present")
        return True


def _bucket_probe(store: ObjectStore, bucket: str) -> str:
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}.probe"
    body = b"xoelt doctor probe"
    store.put_bytes(bucket, key, body)
    try:
        back = store.read_range(bucket, key, 0, len(body))
        if back != body:
            raise RunError(
                f"{store.uri(bucket, key)} read back {len(back)} bytes, not what was written"
            )
    finally:
        store.delete(bucket, key)
    if store.exists(bucket, key):
        raise RunError(f"{store.uri(bucket, key)} is still there after delete")
    return f"wrote, read back and removed {store.uri(bucket, key)}"


def _session(wh: Warehouse, config: Any, database: str) -> str:
    dialect = wh.capabilities.dialect
    if dialect not in SESSION_QUERY:
        return f"database {database} at {wh.location(database)}"
    row = wh.query(SESSION_QUERY[dialect]).rows[0]
    got = dict(zip(SESSION_COLUMNS[dialect], (str(v) if v else "" for v in row), strict=True))
    wanted = {
        "role": getattr(config, "role", None),
        "warehouse": getattr(config, "warehouse", None),
    }
    wanted["database"] = database
    wrong = [
        f"{k} is {got[k] or 'not set'}, the target asks for {v}"
        for k, v in wanted.items()
        if v and got.get(k, "").upper() != str(v).upper()
    ]
    if not got.get("warehouse"):
        wrong.append(
            "no warehouse is in use (set warehouse: in the target, or a default for the user)"
        )
    if wrong:
        raise RunError("; ".join(wrong))
    return ", ".join(f"{k} {v}" for k, v in got.items())


def _stage(wh: Warehouse, stage: str, buckets: set[str]) -> str:
    db, schema, name = stage.split(".")
    answer = wh.query(f"SHOW STAGES IN SCHEMA {quote(db)}.{quote(schema)}")
    cols = [c.lower() for c in answer.columns]
    rows = [dict(zip(cols, r, strict=True)) for r in answer.rows]
    found = [r for r in rows if str(r.get("name", "")).upper() == name]
    if not found:
        raise RunError(f"stage {stage} does not exist (or this role cannot see it)")
    url = str(found[0].get("url") or "")
    expected = {f"s3://{b}/" for b in buckets}
    if expected and url not in expected:
        raise RunError(
            f"stage {stage} points at {url or 'no URL'}, not {' or '.join(sorted(expected))}"
        )
    integration = found[0].get("storage_integration")
    if not integration:
        return f"{stage} → {url} (no storage integration)"
    props = wh.query(f"DESC INTEGRATION {quote(str(integration).upper())}")
    names = [c.lower() for c in props.columns]
    enabled = [
        r
        for r in (dict(zip(names, row, strict=True)) for row in props.rows)
        if str(r.get("property", "")).upper() == "ENABLED"
    ]
    if enabled and str(enabled[0].get("property_value", "")).lower() != "true":
        raise RunError(f"storage integration {integration} of stage {stage} is disabled")
    return f"{stage} → {url}, storage integration {integration} enabled"


def _load(refs: Sequence[str], settings: Settings, doc: _Doctor) -> list[Pipeline]:
    """The named pipelines (a bad name is bad input), or every one under the root (an
    invalid file is a failed row)."""
    if refs:
        return [load_pipeline(resolve(ref, settings.pipelines_root)) for ref in refs]
    out = []
    paths = discover(settings.pipelines_root)
    if not paths:
        doc.add(
            "pipelines", "-", "fail", f"no pipeline files found under {settings.where('pipelines')}"
        )
    for path in paths:
        try:
            out.append(load_pipeline(path))
        except (PipelineInvalid, InputError) as exc:
            doc.add("pipelines", str(path), "fail", str(exc))
    return out


def doctor(
    refs: Sequence[str] = (),
    target: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> DoctorReport:
    """Check the target and the pipelines ``refs`` (default: every pipeline)."""
    settings = settings or Settings.from_env()
    env = environment() if env is None else env
    name, bound = resolve_target(target, settings)
    report = DoctorReport(name)
    doc = _Doctor(report, bound, env, timeout)
    pipelines = _load(refs, settings, doc)

    config = bound.warehouse
    key_file = getattr(config, "private_key_file", None)
    refs_of_target = secret_refs(config) if isinstance(config, BaseModel) else []
    doc.credentials(
        f"target {name}", [r.var for r in refs_of_target], [key_file] if key_file else []
    )
    source_creds: dict[tuple[str, str], bool] = {}
    for p in pipelines:
        for src, sc in p.extracting.items():  # a derived source calls no API
            cls = get_source(sc.type_name)
            extractor = p.extractor_config(src)
            variables = cls.credential_vars(extractor)
            file = getattr(extractor, "credentials_file", None)  # a key file named in config
            source_creds[(p.name, src)] = doc.credentials(
                f"{p.name} {src}", variables, [file] if file else []
            )

    store: ObjectStore | None = None

    def the_store() -> ObjectStore:
        nonlocal store
        if store is None:
            store = bound.store.open()
        return store

    buckets = sorted(
        {
            b
            for p in pipelines
            for b in (p.globals.storage.ingest_bucket, p.globals.storage.stage_bucket)
        }
    )
    for bucket in buckets:
        doc.run("bucket", bucket, lambda b=bucket: _bucket_probe(the_store(), b))

    databases = list(dict.fromkeys(p.globals.snowflake.database for p in pipelines))
    opened: list[Warehouse] = []
    if not databases:
        doc.add("warehouse", bound.warehouse.type, "skip", "no pipeline names a database")
    for database in databases:  # one session per database: each must open, as a run's does

        def open_warehouse(database: str = database) -> str:
            wh = config.open(databases, database, env)
            opened.append(wh)
            return _session(wh, config, database)

        doc.run("warehouse", f"{config.type} {database}", open_warehouse)
    stage = getattr(config, "stage", None)
    if stage:
        stage_buckets = {p.globals.storage.stage_bucket for p in pipelines}
        if opened:
            doc.run("stage", stage, lambda: _stage(opened[0], stage, stage_buckets))
        else:
            doc.add("stage", stage, "skip", "the warehouse did not open")

    moment = now or datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="xoelt-doctor-") as scratch:
        for p in pipelines:
            dag = p.dag
            at = align_to_schedule(moment.astimezone(dag.time_window.zone), dag.schedule)
            window = resolve_window(dag.time_window, at, dag.schedule)
            for src, sc in p.extracting.items():
                subject = f"{p.name} {src}"
                if not source_creds[(p.name, src)]:
                    doc.add("source", subject, "skip", "credentials missing")
                    continue
                cls = get_source(sc.type_name)

                def probe(
                    cls: Any = cls, src: str = src, p: Pipeline = p, window: Any = window
                ) -> str | None:
                    workdir = Path(scratch) / p.name.replace("/", "__") / src
                    workdir.mkdir(parents=True, exist_ok=True)
                    log = get_logger(
                        pipeline=p.name, source=src, run_id="doctor", window=window.label
                    )
                    ctx = ExtractContext(src, window, "doctor", the_store(), env, log, workdir)
                    return cls(p.extractor_config(src), ctx).probe(timeout)

                doc.run("source", subject, probe)
                if report.checks[-1].status == "skip":
                    report.checks[-1].detail = f"{sc.source_type} has no probe"
    for wh in opened:
        wh.close()
    return report
