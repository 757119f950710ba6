"""Helpers for source tests: write a one-source pipeline and run the CLI on it."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.fakes import FakeApis
from xoelt.cli import cli

FAST_RETRY = {"max_attempts": 4, "initial_backoff": 0.01, "max_backoff": 0.05, "timeout_seconds": 1}


def data_text(files: list[Path]) -> str:
    """The CSV an extract wrote, from ``harness.ingest_files()``: its parts (gzip or plain)
    in order, read as one file (the header once)."""
    parts = sorted(p for p in files if p.name.endswith((".csv", ".csv.gz")))
    assert parts, f"no data parts among {files}"
    texts = [
        (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()).decode("utf-8")
        for p in parts
    ]
    head, *rest = texts
    return head + "".join(t.split("\r\n", 1)[1] for t in rest)


def ingest_csv(files: list[Path]) -> tuple[list[list[str]], dict[str, Any]]:
    """(rows of the ingest CSV, its manifest) from ``harness.ingest_files()``."""
    manifest = next(p for p in files if p.name.endswith("_manifest.json"))
    rows = list(csv.reader(io.StringIO(data_text(files), newline="")))
    return rows, json.loads(manifest.read_text())


@dataclass
class SourceHarness:
    root: Path
    home: Path

    def pipeline(
        self, name: str, source: dict[str, Any], *, refresh: dict[str, Any] | None = None
    ) -> Path:
        """Write ``pipelines/test/<name>.yaml`` with one source called ``src``."""
        doc = {
            "dag": {
                "domain": "test",
                "pipeline_name": name,
                "schedule": "0 6 * * *",
                "time_window": refresh
                or {"refresh_type": "daily", "lag": {"days": 1}, "timezone": "America/New_York"},
            },
            "globals": {"snowflake": {"database": "TEST_DB"}},
            "sources": {
                "src": {
                    "load_strategy": "full_refresh",
                    "snowflake": {"target_table": "T_SRC"},
                    **source,
                }
            },
        }
        path = self.root / "pipelines" / "test" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run ``xoelt ARGS`` in-process (CliRunner); returns the click Result."""
        return CliRunner().invoke(
            cli, ["--log-format", "json", *args], env=env, catch_exceptions=False
        )

    def assert_failed(self, result: Any, *needles: str, secrets: tuple[str, ...] = ()) -> None:
        """Exit 1, a message with every needle, no traceback or secret, nothing in ingest."""
        assert result.exit_code == 1, result.output
        for needle in needles:
            assert needle in result.output, result.output
        assert "Traceback" not in result.output
        for secret in secrets:
            assert secret not in result.output
        assert self.ingest_files() == []

    def ingest_files(self) -> list[Path]:
        """Every visible object in the ingest bucket (temp files excluded)."""
        base = self.home / "objects" / "xoelt-ingest"
        return sorted(
            p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".xoelt-tmp-")
        )


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SourceHarness:
    home = tmp_path / "home"
    monkeypatch.setenv("XOELT_HOME", str(home))
    monkeypatch.setenv("XOELT_PIPELINES", str(tmp_path / "pipelines"))
    monkeypatch.setenv("XOELT_SQL", str(tmp_path / "sql"))
    monkeypatch.chdir(tmp_path)
    return SourceHarness(tmp_path, home)


@pytest.fixture(scope="session")
def fake_apis() -> Iterator[FakeApis]:
    """The fake-API servers of the session (``fake_apis.use(FakeX)`` in a per-API fixture)."""
    with FakeApis() as apis:
        yield apis
