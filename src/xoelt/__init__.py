"""xoelt: SaaS data to object storage to Snowflake (or DuckDB), bronze to gold, in one command."""

__version__ = "0.1.0"
