"""One side-by-side table of every benchmark's headline figures, printed at the end of the run.

Each benchmark still prints its own detail as it goes; it also hands its headline figures to
the ``figures`` fixture (``figures.add("stage 1 GB vs 1 MB", "client CPU ratio", 1.02, "x",
target="<= 1.5")``). ``make bench`` then ends with one table, so the figures an issue asks
for are read in one place from one run, never asserted on (a loaded machine is not a
regression). ``XOELT_BENCH_JSON=path`` also writes them as JSON lines for comparison later.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest


@dataclass(frozen=True)
class Figure:
    benchmark: str
    metric: str
    value: float
    unit: str
    target: str = ""


@dataclass
class Figures:
    """The figures recorded so far in this session, in the order they were added."""

    rows: list[Figure] = field(default_factory=list)

    def add(self, benchmark: str, metric: str, value: float, unit: str, target: str = "") -> None:
        """Record one headline figure (``target`` is shown beside it, e.g. ``">= 100,000"``)."""
        self.rows.append(Figure(benchmark, metric, float(value), unit, target))


_SESSION = Figures()


@pytest.fixture(scope="session")
def figures() -> Figures:
    """The session's collector of headline figures (see the module docstring)."""
    return _SESSION


def _value(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def render(rows: list[Figure]) -> list[str]:
    """The figures as aligned text lines: benchmark, metric, value and unit, target."""
    table = [("benchmark", "metric", "value", "target")]
    table += [
        (f.benchmark, f.metric, f"{_value(f.value)} {f.unit}".strip(), f.target) for f in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = []
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.rjust(w) if i == 2 and n else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SESSION.rows:
        return
    terminalreporter.section("benchmark figures, side by side")
    for line in render(_SESSION.rows):
        terminalreporter.write_line(line)
    out = os.environ.get("XOELT_BENCH_JSON")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            for row in _SESSION.rows:
                fh.write(json.dumps(asdict(row)) + "\n")
