"""Run-time resources for one run: the object store, the warehouse, the run id, the lock dir.

Built from a RunPlan's target; connections open lazily so ``extract`` alone never starts a
warehouse, and ``plan`` never builds a Runtime at all.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xoelt.config.env import environment
from xoelt.errors import RunError
from xoelt.storage.base import LockHeld

# Longer than any run may take (the Helm chart's activeDeadlineSeconds is 3 h): a lock older
# than this was left by a run that died without releasing it, and may be taken over.
LOCK_TTL_SECONDS = 6 * 3600

if TYPE_CHECKING:
    from xoelt.plan import RunPlan
    from xoelt.warehouse.base import Warehouse


class Runtime:
    def __init__(
        self, plan: RunPlan, run_id: str | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.plan = plan
        self.run_id = run_id or uuid.uuid4().hex
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.env = environment() if env is None else env
        self.home = plan.target.home_dir
        self.store = plan.target.open_store()
        self._warehouse: Warehouse | None = None

    @property
    def warehouse(self) -> Warehouse:
        """The target's warehouse, connected (and migrated) on first use."""
        if self._warehouse is None:
            from xoelt.ledger import apply_migrations

            self._warehouse = self.plan.target.open_warehouse(self.plan, self.env)
            apply_migrations(self._warehouse, self.plan.database)
        return self._warehouse

    def lock(self, source: str) -> AbstractContextManager[None]:
        """One run per pipeline/source/window at a time, across processes and pods.

        The lock lives in the target's object store (a conditional put on S3, a file lock
        locally), next to the staged data every run of this window touches.
        """
        plan = self.plan
        key = f"locks/{plan.name}/{source}/{plan.window.tag}.lock"
        owner = f"{self.run_id} pid={os.getpid()} host={socket.gethostname()}"
        bucket = plan.pipeline.globals.storage.stage_bucket
        try:
            return self.store.lock(bucket, key, owner, LOCK_TTL_SECONDS)
        except LockHeld as exc:
            raise RunError(str(exc), source=source, window=plan.window.label) from None

    def scratch(self) -> Path:
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
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
