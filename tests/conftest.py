"""Shared fixtures: an isolated XOELT_HOME and working directory per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def xoelt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``XOELT_HOME`` (objects + DuckDB files) for one test."""
    home = tmp_path / "xoelt-home"
    monkeypatch.setenv("XOELT_HOME", str(home))
    monkeypatch.delenv("XOELT_TARGET", raising=False)
    return home


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run with the repository as the working directory (pipelines/, sql/ resolve there)."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("XOELT_PIPELINES", raising=False)
    monkeypatch.delenv("XOELT_SQL", raising=False)
    yield REPO


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one, minus xoelt's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
    env.update(extra)
    return env
