"""Run-time resources for one run: the object store, the warehouse, the run id, the locks.

Built from a RunPlan's target; connections open lazily so ``extract`` alone never starts a
warehouse, and ``plan`` never builds a Runtime at all.

Two kinds of lock, both in the target's object store (``store.lock``):

- the **run lock** (:meth:`Runtime.lock`): one run per pipeline/source/window; a second run
  of the same window fails at once (LockHeld);
- **table locks** (:meth:`Runtime.table_lock`): one writer of a shared table at a time,
  across windows: a window holds its source's bronze table from load through silver (so
  two windows of one source never share bronze while in flight, and a transform reads only
  its own window's bronze), and the gold schema while materialising gold. These *wait*
  (polling with backoff, bounded by ``lock_wait`` seconds, then LockHeld saying how long it
  waited and who holds it), so a backfill's workers queue on them while extract and stage
  still run in parallel.

A run opens its own warehouse session, migrates it and closes it at the end, unless it is
lent one by :class:`SharedConnections` (a backfill's: a pool of at most one connection per
worker, one round of migrations and one object store client for every window); a borrowed
connection is handed back, never closed, and one a failed run may have left in a
transaction is rolled back first.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xoelt import ledger
from xoelt.config.env import environment
from xoelt.errors import LockHeld, StorageError, WarehouseError
from xoelt.plan import RunPlan
from xoelt.progress import ProgressListener
from xoelt.settings import Settings
from xoelt.storage.base import ObjectStore
from xoelt.targets import WarehouseConfig
from xoelt.warehouse.base import TableRef, Warehouse

# Longer than any run may take (the Helm chart's activeDeadlineSeconds is 3 h): a lock older
# than this was left by a run that died without releasing it, and may be taken over.
LOCK_TTL_SECONDS = 6 * 3600
# How long a window waits for a table another window holds: its load and transform (one
# window of one source, or one round of gold), with room to spare.
TABLE_LOCK_WAIT_SECONDS = 3600.0


class Runtime:
    def __init__(
        self,
        plan: RunPlan,
        settings: Settings,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
        session: SharedConnections | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.run_id = run_id or uuid.uuid4().hex
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.env = environment() if env is None else env
        self.home = plan.target.home
        self._store: ObjectStore | None = None
        self._warehouse: Warehouse | None = None
        self._session = session
        self._query_tag = self.query_tag("open", None)
        self.lock_wait = TABLE_LOCK_WAIT_SECONDS
        self.progress: ProgressListener | None = None  # hears extraction progress (a TTY bar)

    @property
    def store(self) -> ObjectStore:
        """The target's object store (its client made on first use)."""
        if self._store is None:
            shared = self._session
            self._store = shared.store() if shared is not None else self.plan.target.store.open()
        return self._store

    @property
    def warehouse(self) -> Warehouse:
        """The target's warehouse, connected (and migrated) on first use; borrowed from the
        run's :class:`SharedConnections` if it has one."""
        if self._warehouse is None:
            if self._session is not None:
                warehouse = self._session.connection()
            else:
                plan = self.plan
                warehouse = open_migrated(plan.target.warehouse, plan, self.env)
            self._warehouse = warehouse
            warehouse.set_query_tag(self._query_tag)
        return self._warehouse

    def query_tag(self, stage: str, source: str | None) -> str:
        """The warehouse's label for a stage's statements: JSON naming pipeline, source,
        stage, run and window, so the warehouse's query history says which run did what."""
        plan = self.plan
        return json.dumps(
            {
                "app": "xoelt",
                "pipeline": plan.name,
                "source": source,
                "stage": stage,
                "run_id": self.run_id,
                "window": plan.window.label,
            },
            separators=(",", ":"),
        )

    def enter_stage(self, stage: str, source: str | None) -> None:
        """Label what follows as ``stage`` of ``source`` (now if connected, else on connect)."""
        self._query_tag = self.query_tag(stage, source)
        if self._warehouse is not None:
            self._warehouse.set_query_tag(self._query_tag)

    def lock(self, source: str) -> AbstractContextManager[None]:
        """One run per pipeline/source/window at a time, across processes and pods.

        The lock lives in the target's object store (a conditional put on S3, a file lock
        locally), next to the staged data every run of this window touches. Raises LockHeld.
        """
        plan = self.plan
        key = f"locks/{plan.name}/{source}/{plan.window.tag}.lock"
        return self.store.lock(self._lock_bucket, key, self._owner, LOCK_TTL_SECONDS)

    def table_lock(
        self, table: TableRef, what: str, log: Any = None
    ) -> AbstractContextManager[None]:
        """Hold ``table`` (named ``what`` in messages) against other windows, waiting for it.

        ``table`` may be a whole schema's stand-in (gold): the key is its qualified name.
        """
        key = f"locks/tables/{table.database}/{table.schema}/{table.name}.lock"
        owner = f"{self._owner} window={self.plan.window.tag}"
        return wait_for_lock(
            lambda: self.store.lock(self._lock_bucket, key, owner, LOCK_TTL_SECONDS),
            what=what,
            wait=self.lock_wait,
            log=log,
        )

    @property
    def _lock_bucket(self) -> str:
        return self.plan.pipeline.globals.storage.stage_bucket

    @property
    def _owner(self) -> str:
        return f"{self.run_id} pid={os.getpid()} host={socket.gethostname()}"

    def scratch(self) -> Path:
        """The run's local scratch directory (``$XOELT_HOME/tmp``), created on first use."""
        path = self.home / "tmp"
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create scratch directory {path}: {exc.strerror}") from exc
        return path

    @property
    def warehouse_open(self) -> bool:
        """Whether this run has connected to its warehouse (extract/stage alone do not)."""
        return self._warehouse is not None

    def release_warehouse(self) -> None:
        """Give up the run's warehouse session now; the next use opens a new one. For an
        engine in this process that must open the same DuckDB files itself (dbt-duckdb):
        a borrowed session is closed and dropped from its pool, not handed back."""
        if self._warehouse is not None:
            if self._session is not None:
                self._session.discard(self._warehouse)
            else:
                self._warehouse.close()
            self._warehouse = None

    def close(self, failed: bool = False) -> None:
        """Close the run's warehouse session, or hand a borrowed one back to its lender
        (``failed``: the run ended in an error, so the session may need cleaning)."""
        if self._warehouse is not None:
            if self._session is not None:
                self._session.release(self._warehouse, failed=failed)
            else:
                self._warehouse.close()
            self._warehouse = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        self.close(failed=kind is not None)


def open_migrated(config: WarehouseConfig, plan: RunPlan, env: Mapping[str, str]) -> Warehouse:
    """A new session on the plan's databases, with xoelt's pending migrations applied."""
    warehouse = config.open(plan.databases, plan.database, env, plan.read_databases)
    try:
        ledger.apply_migrations(warehouse, plan.database)
    except BaseException:
        warehouse.close()
        raise
    return warehouse


class SharedConnections:
    """Connections lent to many runs of one pipeline (a backfill's windows): the warehouse's
    and the object store's client (one for all threads: boto3's clients are thread-safe).

    Warehouse connections are pooled: a run borrows an idle one (:meth:`connection`), or a
    new one is opened when none is idle, so there are never more than runs at once (a
    backfill's workers; DuckDB backfills run one window at a time). xoelt's migrations are
    applied by the first connection only. A run hands its connection back with
    :meth:`release`: after a failure any open transaction is rolled back and the session
    probed, and a session that no longer answers is closed instead, so the next run opens a
    fresh one. :meth:`close` (or the ``with`` block's end) closes them all. ``opened``
    counts the connections made.
    """

    def __init__(self, plan: RunPlan, env: Mapping[str, str] | None = None) -> None:
        self.plan = plan
        self.env = environment() if env is None else env
        self.opened = 0
        self._lock = threading.Lock()  # guards the pool, the count and the store
        self._migrating = threading.Lock()  # the first opener migrates; the others wait
        self._migrated = False
        self._all: list[Warehouse] = []
        self._idle: list[Warehouse] = []
        self._store: ObjectStore | None = None

    def store(self) -> ObjectStore:
        """The target's object store, its client made once."""
        with self._lock:
            if self._store is None:
                self._store = self.plan.target.store.open()
            return self._store

    def connection(self) -> Warehouse:
        """An idle connection, or a new one (migrating the database, the first time)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        plan, config = self.plan, self.plan.target.warehouse
        warehouse: Warehouse | None = None
        with self._migrating:
            if not self._migrated:
                warehouse = open_migrated(config, plan, self.env)
                self._migrated = True
        if warehouse is None:  # migrated already: connect at once
            warehouse = config.open(plan.databases, plan.database, self.env, plan.read_databases)
        with self._lock:
            self.opened += 1
            self._all.append(warehouse)
        return warehouse

    def release(self, warehouse: Warehouse, *, failed: bool) -> None:
        """Take ``warehouse`` back after a run. A run that succeeded committed or rolled back
        everything it began; after a failure (or an interrupt) roll back whatever is open,
        and if the session does not answer a probe, close it: the next run reconnects."""
        if failed:
            with contextlib.suppress(WarehouseError):  # "no transaction is active" is fine
                warehouse.query("ROLLBACK", native=True)
            try:
                warehouse.query("SELECT 1", native=True)
            except Exception:
                self.discard(warehouse)
                return
        with self._lock:
            if warehouse in self._all and warehouse not in self._idle:
                self._idle.append(warehouse)

    def discard(self, warehouse: Warehouse) -> None:
        """Close a broken connection and forget it."""
        with self._lock:
            if warehouse in self._all:
                self._all.remove(warehouse)
            if warehouse in self._idle:
                self._idle.remove(warehouse)
        with contextlib.suppress(Exception):
            warehouse.close()

    def close(self) -> None:
        """Close every connection the session made (from any thread)."""
        with self._lock:
            connections, self._all, self._idle = self._all, [], []
        for warehouse in connections:
            with contextlib.suppress(Exception):
                warehouse.close()

    def __enter__(self) -> SharedConnections:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def wait_for_lock(
    take: Callable[[], AbstractContextManager[None]],
    *,
    what: str,
    wait: float,
    log: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[None]:
    """Hold the lock ``take()`` takes (it raises LockHeld while another holds it), retrying
    with exponential backoff and jitter for up to ``wait`` seconds; then LockHeld naming
    ``what``, the time waited and the holder."""
    deadline = clock() + wait
    delay = 0.05
    waited = False
    while True:
        try:
            held = take()
            break
        except LockHeld as exc:
            left = deadline - clock()
            if left <= 0:
                raise LockHeld(
                    f"gave up waiting {wait:g}s for {what}: {exc.message}", findings=exc.findings
                ) from exc
            if log is not None and not waited:
                log.info("waiting for lock", what=what, holder=exc.message)
            waited = True
            sleep(min(left, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, 5.0)
    with held:
        yield
