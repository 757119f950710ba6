"""Warehouses: DuckDB (embedded default) and Snowflake, behind one small interface.

Adapters are picked by the target's ``warehouse_kind`` from :data:`WAREHOUSES`; their modules
import their drivers lazily, so looking a class up (for ``plan``) costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

WAREHOUSES = {
    "duckdb": "xoelt.warehouse.duckdb:DuckDBWarehouse",
    "snowflake": "xoelt.warehouse.snowflake:SnowflakeWarehouse",
}


def warehouse_class(kind: str) -> Any:
    """The adapter class for ``kind``; the error lists the valid kinds."""
    if kind not in WAREHOUSES:
        raise ValueError(f"unknown warehouse {kind!r}; valid: {', '.join(sorted(WAREHOUSES))}")
    module, _, name = WAREHOUSES[kind].partition(":")
    return getattr(importlib.import_module(module), name)
