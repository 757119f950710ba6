"""Warehouses: DuckDB (embedded default) and Snowflake, behind one small interface.

Each engine is one module that owns its config model (``type: Literal[...]``, chosen by a
target), its :class:`~xoelt.warehouse.base.Capabilities` and its dialect; the driver is
imported inside ``open``, so reading a target (for ``plan``) costs nothing.
"""
