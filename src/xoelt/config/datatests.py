"""Data tests as declared in YAML: one pydantic model per ``kind``, one discriminated union.

Tests are declared under a source's ``silver: tests:`` and in a gold model's sidecar
(``sql/gold/<domain>/<model>.yml``, :class:`GoldSidecar`). Every kind has ``severity``
(``warn`` or ``error``, default ``error``) and an optional ``name``; the rest is the kind's
own. Column and table names are identifiers (validated, upper-cased, always quoted); an
``expression`` is SQL the user owns, parsed with sqlglot here so a typo fails at validate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from xoelt.config.types import Identifier, Name, StrictModel

Severity = Literal["warn", "error"]

TEST_KINDS = (
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "row_count",
    "volume",
    "freshness",
    "expression",
)
"""Every ``kind`` a data test may have (the discriminator's values)."""


def _one_or_many(value: Any) -> Any:
    """``columns: ID`` is ``columns: [ID]``."""
    return [value] if isinstance(value, str) else value


class _DataTest(StrictModel):
    kind: str  # each kind narrows it to its Literal (the union's discriminator)
    severity: Severity = "error"
    name: Name | None = None

    @property
    def columns_used(self) -> tuple[str, ...]:
        """The tested table's columns this test names (checked to exist before it runs)."""
        column = getattr(self, "column", None)
        return (column,) if column else ()

    @property
    def label(self) -> str:
        """A short description for ``plan``: ``unique(ID, DAY)``, ``row_count [warn]``."""
        columns = f"({', '.join(self.columns_used)})" if self.columns_used else ""
        return f"{self.kind}{columns}" + (" [warn]" if self.severity == "warn" else "")


class NotNull(_DataTest):
    """No row has a NULL in ``column``."""

    kind: Literal["not_null"]
    column: Identifier


class Unique(_DataTest):
    """No two rows share ``columns`` (one column or a compound key); rows with a NULL in
    any of them are left to ``not_null``."""

    kind: Literal["unique"]
    columns: Annotated[list[Identifier], BeforeValidator(_one_or_many)] = Field(min_length=1)

    @property
    def columns_used(self) -> tuple[str, ...]:
        return tuple(self.columns)


class AcceptedValues(_DataTest):
    """Every non-NULL value of ``column`` is one of ``values``."""

    kind: Literal["accepted_values"]
    column: Identifier
    values: list[bool | int | float | str] = Field(min_length=1)


def _table_name(value: Any) -> Any:
    """``TABLE``, ``SCHEMA.TABLE`` or ``DB.SCHEMA.TABLE``, each part an identifier."""
    if not isinstance(value, str):
        return value
    parts = value.split(".")
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{value!r} is not TABLE, SCHEMA.TABLE or DATABASE.SCHEMA.TABLE")
    return value


class Relationships(_DataTest):
    """Every non-NULL value of ``column`` is a ``field`` value of table ``to`` (``TABLE``
    in the tested table's schema, ``SCHEMA.TABLE`` in its database, or ``DB.SCHEMA.TABLE``)."""

    kind: Literal["relationships"]
    column: Identifier
    to: Annotated[str, BeforeValidator(_table_name)]
    field: Identifier

    @field_validator("to")
    @classmethod
    def _parts(cls, value: str) -> str:
        from xoelt.config.types import IDENTIFIER

        bad = [p for p in value.split(".") if not IDENTIFIER.match(p)]
        if bad:
            raise ValueError(f"{bad[0]!r} in {value!r} is not a valid identifier")
        return value.upper()


class RowCount(_DataTest):
    """The table (a silver table: the window's rows) has between ``min`` and ``max`` rows."""

    kind: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCount:
        if self.min is None and self.max is None:
            raise ValueError("row_count needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"row_count min {self.min} is above max {self.max}")
        return self


class Volume(_DataTest):
    """This window's rows (the transform's row count in the run ledger) against the median
    of the last ``windows`` windows: below ``min_percent`` or above ``max_percent`` of it
    fails. With fewer than ``min_history`` earlier windows it passes, saying so."""

    kind: Literal["volume"]
    windows: int = Field(7, ge=1, le=366)
    min_percent: float = Field(50, ge=0)
    max_percent: float | None = Field(200, gt=0)
    min_history: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> Volume:
        if self.max_percent is not None and self.max_percent < self.min_percent:
            raise ValueError(
                f"volume max_percent {self.max_percent:g} is below min_percent {self.min_percent:g}"
            )
        if self.min_history > self.windows:
            raise ValueError(f"min_history {self.min_history} is more than windows {self.windows}")
        return self


class MaxAge(StrictModel):
    days: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)
    minutes: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> MaxAge:
        if not (self.days or self.hours or self.minutes):
            raise ValueError("max_age must be longer than zero ({hours: 36})")
        return self

    @property
    def seconds(self) -> int:
        return ((self.days * 24 + self.hours) * 60 + self.minutes) * 60


class Freshness(_DataTest):
    """The newest value of timestamp ``column`` is at most ``max_age`` before the window's end."""

    kind: Literal["freshness"]
    column: Identifier
    max_age: MaxAge


class Expression(_DataTest):
    """A SQL boolean (Snowflake's dialect) that must be TRUE for every row; a row where it
    is FALSE or NULL fails."""

    kind: Literal["expression"]
    expression: str = Field(min_length=1)

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        if not _PARSED.known(value):
            parse_expression(value)
            _PARSED.add(value)
        return value.strip()


class _ParsedCache:
    """Hashes of expressions that parsed, in ``$XDG_CACHE_HOME/xoelt`` (as gold's
    dependency cache): importing sqlglot costs ~80 ms, and ``plan`` loads the pipeline.
    Derived data only; a missing or unwritable file costs time, never correctness."""

    def __init__(self) -> None:
        self.hashes: set[str] | None = None

    @staticmethod
    def _path() -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "xoelt" / "test-expressions.json"

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.strip().encode()).hexdigest()

    def _load(self) -> set[str]:
        if self.hashes is None:
            try:
                self.hashes = set(json.loads(self._path().read_text()))
            except (OSError, ValueError, TypeError):
                self.hashes = set()
        return self.hashes

    def known(self, text: str) -> bool:
        return self._key(text) in self._load()

    def add(self, text: str) -> None:
        hashes = self._load()
        hashes.add(self._key(text))
        path = self._path()
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(sorted(hashes)))
            os.replace(tmp, path)


_PARSED = _ParsedCache()


def parse_expression(text: str) -> Any:
    """``text`` parsed as one Snowflake SQL expression (a sqlglot tree); ValueError saying
    why not, in one line."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(text, read="snowflake") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise ValueError(f"{text!r} does not parse as SQL: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ValueError(f"{text!r} must be one SQL expression, not {len(statements)} statements")
    tree = statements[0]
    if isinstance(tree, exp.Query | exp.DDL | exp.DML | exp.Command | exp.Use | exp.Transaction):
        raise ValueError(f"{text!r} must be a boolean expression over a row, not a statement")
    return tree


def parse_predicate(text: str) -> str:
    """``text`` (stripped) if it is one SQL boolean expression: a comparison, IN, LIKE,
    IS [NOT] NULL, BETWEEN, AND/OR/NOT of those (a derived source's ``where``); a
    ValueError in one line otherwise. Parsed once per text (cached, as test expressions)."""
    marked = f"predicate:{text.strip()}"
    if _PARSED.known(marked):
        return text.strip()
    from sqlglot import exp

    tree = parse_expression(text)
    inner = tree.unnest() if isinstance(tree, exp.Paren) else tree
    if not isinstance(inner, exp.Predicate | exp.Connector | exp.Not | exp.Boolean):
        raise ValueError(
            f"{text!r} is not a predicate (a condition such as COLUMN = 'value', "
            "COLUMN IN (...), or AND/OR/NOT of those)"
        )
    if any(node.comments for node in tree.walk()):
        # it is pasted into a statement in parentheses: a `--` comment would swallow the rest
        raise ValueError(f"{text!r}: no SQL comments in a where predicate (use YAML's #)")
    _PARSED.add(marked)
    return text.strip()


def predicate_columns(text: str) -> set[str]:
    """The column names a predicate reads, as Snowflake resolves them (unquoted: upper-case)."""
    from sqlglot import exp

    named = set()
    for column in parse_expression(text).find_all(exp.Column):
        ident = column.this
        if isinstance(ident, exp.Identifier):
            named.add(ident.this if ident.quoted else ident.this.upper())
    return named


DataTest = Annotated[
    NotNull | Unique | AcceptedValues | Relationships | RowCount | Volume | Freshness | Expression,
    Field(discriminator="kind"),
]
"""One declared data test, chosen by its ``kind``."""


class GoldSidecar(StrictModel):
    """A gold model's ``<model>.yml`` beside its ``.sql``: the model's key (its failing rows
    are shown by it) and its tests. ``volume`` is for silver sources only: the run ledger
    counts rows per window per source, not per gold model."""

    description: str | None = None
    key: Annotated[list[Identifier], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    tests: list[DataTest] = Field(default_factory=list)

    @field_validator("tests")
    @classmethod
    def _no_volume(cls, tests: list[DataTest]) -> list[DataTest]:
        for index, test in enumerate(tests):
            if test.kind == "volume":
                raise ValueError(
                    f"tests[{index}]: volume is for silver tables (the run ledger counts rows "
                    "per window per source, not per gold model); use row_count on a gold model"
                )
        return tests
