"""A project directory with the demo pipeline, its SQL and its landing files, per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from xoelt.storage.local import LocalObjectStore

REPO = Path(__file__).resolve().parents[2]
XOELT = [sys.executable, "-m", "xoelt"]


@dataclass
class Project:
    root: Path
    home: Path

    def xoelt(
        self, *args: str, check: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``xoelt ARGS`` as a user would: a subprocess in the project directory."""
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
        env.update(extra)
        env["XOELT_HOME"] = str(self.home)
        proc = subprocess.run(
            [*XOELT, *args], cwd=self.root, env=env, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"xoelt {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def publish_demo_files(self) -> None:
        store = LocalObjectStore(self.home / "objects")
        data = REPO / "pipelines" / "demo" / "data"
        for path in sorted(data.rglob("*.csv")):
            store.put_file("xoelt-landing", path.relative_to(data).as_posix(), path)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    shutil.copytree(
        REPO / "pipelines" / "demo",
        root / "pipelines" / "demo",
        ignore=shutil.ignore_patterns("data"),
    )
    shutil.copytree(REPO / "sql", root / "sql")
    return Project(root, tmp_path / "home")
