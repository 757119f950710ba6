"""Warehouses: DuckDB (embedded default) and Snowflake, behind one small interface."""
