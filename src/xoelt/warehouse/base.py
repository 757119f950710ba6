"""The warehouse interface, table names, quoting and the metadata columns of bronze."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

METADATA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_XO_RUN_ID", "VARCHAR"),
    ("_XO_SOURCE_FILE", "VARCHAR"),
    ("_XO_FILE_ROW_NUMBER", "NUMBER(38,0)"),
    ("_XO_LOADED_AT", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_START", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_END", "TIMESTAMP_TZ"),
)
METADATA_NAMES = tuple(name for name, _ in METADATA_COLUMNS)


def quote(identifier: str) -> str:
    """Quote a validated identifier; anything else is refused (never pasted into SQL)."""
    if not _IDENT.match(identifier):
        raise ValueError(f"refusing to quote invalid identifier {identifier!r}")
    return f'"{identifier}"'


def literal(text: str) -> str:
    """A SQL string literal (single quotes doubled; backslashes doubled for Snowflake)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class TableRef:
    database: str
    schema: str
    name: str

    @property
    def sql(self) -> str:
        return f"{quote(self.database)}.{quote(self.schema)}.{quote(self.name)}"

    @property
    def schema_sql(self) -> str:
        return f"{quote(self.database)}.{quote(self.schema)}"

    def __str__(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"

    def with_name(self, name: str) -> TableRef:
        return TableRef(self.database, self.schema, name)


@dataclass(frozen=True)
class Capabilities:
    """What differs between engines, as data (read by the stage code, not isinstance)."""

    dialect: str
    transactional_ddl: bool
    copy_from_stage: bool
    merge_rejects_duplicate_keys: bool


@dataclass(frozen=True)
class BronzeLoad:
    """Everything needed to (re)load one bronze table from one staged CSV file."""

    table: TableRef
    columns: Sequence[str]
    bucket: str
    key: str
    file_uri: str
    window_start: str
    window_end: str


class Warehouse(Protocol):
    """A connection to one warehouse. SQL given to ``execute`` is in Snowflake's dialect."""

    capabilities: Capabilities

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement (Snowflake dialect) and return its rows."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """BEGIN … COMMIT; explicit ROLLBACK on any error."""
        ...

    def table_columns(self, table: TableRef) -> list[str] | None:
        """Column names in order, or None if the table does not exist."""
        ...

    def render_bronze_load(
        self,
        load: BronzeLoad,
        columns: Sequence[str] | None = None,
        *,
        copy_transformations: bool = True,
    ) -> list[str]:
        """The statements :meth:`load_bronze` will run, as text (for ``plan``)."""
        ...

    def load_bronze(self, load: BronzeLoad, run_id: str, loaded_at: str, expected_rows: int) -> int:
        """Atomically replace bronze with the file's rows; fail unless rows loaded == expected."""
        ...

    def count(self, table: TableRef) -> int: ...

    def path_of(self, database: str) -> object:
        """Where the database lives, for messages (a file path, an account URL)."""
        ...

    def close(self) -> None: ...


def iter_statements(script: str) -> Iterator[str]:
    """Split a migration script on ``;`` at line ends (our files keep one statement each)."""
    for chunk in re.split(r";\s*(?:\n|$)", script):
        body = "\n".join(
            line for line in chunk.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            yield body
