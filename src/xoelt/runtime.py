"""Run-time resources for one run: the object store, the warehouse, the run id, the lock.

Built from a RunPlan's target; connections open lazily so ``extract`` alone never starts a
warehouse, and ``plan`` never builds a Runtime at all.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xoelt import ledger
from xoelt.config.env import environment
from xoelt.errors import StorageError
from xoelt.plan import RunPlan
from xoelt.settings import Settings
from xoelt.storage.base import ObjectStore
from xoelt.warehouse.base import Warehouse

# Longer than any run may take (the Helm chart's activeDeadlineSeconds is 3 h): a lock older
# than this was left by a run that died without releasing it, and may be taken over.
LOCK_TTL_SECONDS = 6 * 3600


class Runtime:
    def __init__(
        self,
        plan: RunPlan,
        settings: Settings,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.run_id = run_id or uuid.uuid4().hex
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.env = environment() if env is None else env
        self.home = plan.target.home
        self._store: ObjectStore | None = None
        self._warehouse: Warehouse | None = None
        self._query_tag = self.query_tag("open", None)

    @property
    def store(self) -> ObjectStore:
        """The target's object store (its client made on first use)."""
        if self._store is None:
            self._store = self.plan.target.store.open()
        return self._store

    @property
    def warehouse(self) -> Warehouse:
        """The target's warehouse, connected (and migrated) on first use."""
        if self._warehouse is None:
            plan = self.plan
            warehouse = plan.target.warehouse.open(plan.databases, plan.database, self.env)
            try:
                ledger.apply_migrations(warehouse, plan.database)
            except BaseException:
                warehouse.close()
                raise
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
        owner = f"{self.run_id} pid={os.getpid()} host={socket.gethostname()}"
        bucket = plan.pipeline.globals.storage.stage_bucket
        return self.store.lock(bucket, key, owner, LOCK_TTL_SECONDS)

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

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
