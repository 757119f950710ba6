"""Run-time resources for one run: the object store, the warehouse, the run id, the lock dir.

Built from a RunPlan's target; connections open lazily so ``extract`` alone never starts a
warehouse, and ``plan`` never builds a Runtime at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xoelt.config.env import environment
from xoelt.errors import RunError

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

    @contextlib.contextmanager
    def lock(self, source: str) -> Generator[None]:
        """One run per pipeline/source/window at a time (a file lock; released on exit)."""
        locks = self.home / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        name = f"{self.plan.name}/{source}/{self.plan.window.tag}".replace("/", "__")
        path = locks / f"{name}.lock"
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunError(
                    f"another run holds the lock {path} for this window; try again when it ends",
                    source=source,
                    window=self.plan.window.label,
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()} {self.run_id}\n")
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def scratch(self) -> Path:
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
