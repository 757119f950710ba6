"""Layers point one way, and the package has no import cycles.

Every import of an ``xoelt`` module counts, wherever it stands: module level, inside a
function, or under ``if TYPE_CHECKING:``. A module may import its own layer or lower ones,
never a higher one, and the module graph (packages folded into their ``__init__``) has no
cycle. Lazy imports are for heavy third-party packages only; ruff's
``banned-module-level-imports`` keeps those out of module level.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "xoelt"

# Lowest first. A module is placed by its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    (
        "xoelt",
        "xoelt.redact",
        "xoelt.interrupts",
        "xoelt.findings",
        "xoelt.progress",
        "xoelt.errors",
        "xoelt.settings",
        "xoelt.columns",
    ),
    ("xoelt.config", "xoelt.timewindow", "xoelt.schedule", "xoelt.logging", "xoelt.retry"),
    ("xoelt.storage", "xoelt.warehouse", "xoelt.sources"),
    (
        "xoelt.strategies",
        "xoelt.scd2",
        "xoelt.drift",
        "xoelt.casts",
        "xoelt.gold",
        "xoelt.dbt_project",
        "xoelt.targets",
        "xoelt.metrics",
        "xoelt.pipelines",
    ),
    ("xoelt.plan",),
    (
        "xoelt.ledger",
        "xoelt.runtime",
        "xoelt.stages",
        "xoelt.alerts",
        "xoelt.datatests",
        "xoelt.dbt_engine",
        "xoelt.dbt_profiles",
    ),
    (
        "xoelt.core",
        "xoelt.backfill",
        "xoelt.doctor",
        "xoelt.listing",
        "xoelt.migrate",
        "xoelt.watchdog",
        "xoelt.report",
    ),
    ("xoelt.console", "xoelt.deploy", "xoelt.k8sjob", "xoelt.cli", "xoelt.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, level = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    assert level >= 0, f"{module} is in no layer: add it to LAYERS"
    return level


def imports(path: Path, module: str) -> set[str]:
    """Every xoelt module ``path`` imports (``from x import y`` counts y if it is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("xoelt"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("xoelt"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                candidate = SRC.parent / Path(*sub.split("."))
                is_module = candidate.with_suffix(".py").is_file() or candidate.is_dir()
                found.add(sub if is_module else base)
    return found - {module}


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
GRAPH = {m: imports(p, m) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module: str) -> None:
    mine = layer_of(module)
    upward = sorted(t for t in GRAPH[module] if layer_of(t) > mine)
    assert not upward, f"{module} (layer {mine}) imports higher layers: {upward}"


def test_no_import_cycles() -> None:
    graph = {m: {t for t in deps if t in MODULES} for m, deps in GRAPH.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_layering_catches_function_level_imports(tmp_path: Path) -> None:
    """The walk sees imports inside functions and under TYPE_CHECKING, not just the top."""
    sample = tmp_path / "x.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from xoelt.cli import cli\n"
        "def f():\n    from xoelt.core import execute\n"
    )
    assert imports(sample, "xoelt.x") == {"xoelt.cli", "xoelt.core"}
