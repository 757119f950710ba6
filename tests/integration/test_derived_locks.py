"""A derived source's transform holds its parent's bronze table lock (the directory store's
real ``flock`` locks): alone it waits for the window holding that bronze; in a full run the
lock taken for the parent's load is kept until the last derived silver is written."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_derived_sources import DAYS, PIPELINE
from xoelt import runtime
from xoelt.core import execute, make_plan
from xoelt.errors import LockHeld, StageFailed
from xoelt.settings import Settings
from xoelt.stages import Stage
from xoelt.storage.local import LocalObjectStore

REPO = Path(__file__).resolve().parents[2]
BRONZE_LOCK = "locks/tables/DEMO_DB/BRONZE/LANDING_PEOPLE.lock"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    pipelines = tmp_path / "pipelines" / "demo"
    pipelines.mkdir(parents=True)
    (pipelines / "people.yaml").write_text(textwrap.dedent(PIPELINE))
    home = tmp_path / "home"
    store = LocalObjectStore(home / "objects")
    for day, body in DAYS.items():
        path = tmp_path / f"{day}.csv"
        path.write_text(body, newline="")
        store.put_file("xoelt-landing", f"people/{day}/people.csv", path)
    return Settings(home=home, pipelines_root=tmp_path / "pipelines", sql_root=REPO / "sql")


def test_a_derived_transform_waits_for_the_parents_bronze_lock(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_plan("demo/people", "2026-11-03", settings=settings)
    execute(plan, settings=settings)
    monkeypatch.setattr(runtime, "TABLE_LOCK_WAIT_SECONDS", 0.3)
    store = LocalObjectStore(settings.home / "objects")
    held = store.lock("xoelt-stage", BRONZE_LOCK, "another window's load", 60)
    with held, pytest.raises(StageFailed) as failed:
        execute(plan, stages=("transform",), source="team_a", settings=settings)
    assert isinstance(failed.value.__cause__, LockHeld)
    message = str(failed.value)
    assert message.startswith("transform failed source=team_a window=")
    assert "gave up waiting 0.3s for bronze DEMO_DB.BRONZE.LANDING_PEOPLE" in message
    assert "another window's load" in message
    report = execute(plan, stages=("transform",), source="team_a", settings=settings)
    assert [(s.name, s.rows) for s in report.sources] == [("team_a", {"transform": 2})]


def test_a_run_keeps_the_bronze_lock_from_the_parents_load_to_the_last_derived_silver(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, ...]] = []
    real_lock = runtime.Runtime.table_lock
    real_run = Stage.run

    @contextlib.contextmanager
    def table_lock(self: Any, table: Any, what: str, log: Any = None) -> Generator[None]:
        with real_lock(self, table, what, log):
            events.append(("lock", str(table)))
            yield
            events.append(("unlock", str(table)))

    def run(self: Stage, rt: Any, sp: Any, log: Any) -> Any:
        events.append((sp.name, self.name))
        return real_run(self, rt, sp, log)

    monkeypatch.setattr(runtime.Runtime, "table_lock", table_lock)
    monkeypatch.setattr(Stage, "run", run)
    execute(make_plan("demo/people", "2026-11-03", settings=settings), settings=settings)
    bronze = "DEMO_DB.BRONZE.LANDING_PEOPLE"
    assert [e for e in events if not e[1].startswith("DEMO_DB.GOLD")] == [
        ("people", "extract"),
        ("people", "stage"),
        ("lock", bronze),
        ("people", "load"),
        ("people", "transform"),
        ("team_b", "transform"),
        ("team_a", "transform"),
        ("unlock", bronze),
    ]
