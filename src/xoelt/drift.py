"""Schema drift: the columns a pull delivered against the columns bronze already has.

Bronze keeps every column it ever had (a load adds a new column as VARCHAR and never drops
one), so a column a pull no longer delivers would load as NULL without a word, and a renamed
column would look like one column gone and one new. The load stage compares the staged
header (standardised names) with bronze's source columns *before* it loads anything, and
applies the source's :class:`~xoelt.config.models.SchemaPolicy`:

- ``on_new_column``: ``add`` (default; recorded) or ``fail``;
- ``on_missing_column``: ``auto`` (default: fail for a column ``silver.columns`` types or
  ``silver.primary_key`` names, warn otherwise), ``fail``, ``warn``, or ``null`` (load NULL,
  recorded as info);
- when exactly one column leaves and one arrives in the same pull, a hint that it looks
  renamed.

Bronze is the reference rather than the previous window's file because it is what silver
reads: whatever bronze has and the file lacks is what silver would get as NULL. The first
load of a table has nothing to compare with and finds no drift. Every outcome is a
:class:`~xoelt.findings.Finding` (column names in ``data``); a failure is a DataError that
carries them, so the failed ledger row keeps them too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xoelt.config.models import SchemaPolicy, SilverConfig
from xoelt.errors import DataError
from xoelt.findings import Finding, Severity
from xoelt.warehouse.base import METADATA_NAMES, TableRef

DEFAULT_ON_NEW_COLUMN = "add"
DEFAULT_ON_MISSING_COLUMN = "auto"


@dataclass(frozen=True)
class Drift:
    """How a pull's columns differ from bronze's: columns new to bronze, columns it lacks."""

    new: tuple[str, ...]
    missing: tuple[str, ...]

    @classmethod
    def between(cls, bronze: Sequence[str] | None, pulled: Sequence[str]) -> Drift:
        """The drift of ``pulled`` (the staged header) against bronze's columns (None: no
        bronze table yet, so nothing to compare with)."""
        if bronze is None:
            return cls((), ())
        have = [c for c in bronze if c not in METADATA_NAMES]
        return cls(
            tuple(c for c in pulled if c not in have),
            tuple(c for c in have if c not in pulled),
        )

    @property
    def renamed(self) -> tuple[str, str] | None:
        """(old, new) when exactly one column left and one arrived: it looks renamed."""
        if len(self.missing) == 1 and len(self.new) == 1:
            return self.missing[0], self.new[0]
        return None


def _names(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def _plural(columns: Sequence[str], one: str, many: str) -> str:
    return one if len(columns) == 1 else many


def _missing_outcome(
    column: str, on_missing: str, silver: SilverConfig, needed: Mapping[str, str]
) -> tuple[Severity, str]:
    """(severity, why) for a column the pull lacks; severity ``error`` refuses the load."""
    if on_missing != "auto":
        severity: Severity = {"fail": "error", "warn": "warn", "null": "info"}[on_missing]
        return severity, f"on_missing_column: {on_missing}"
    if column in silver.primary_key:
        return "error", "silver keys on it"
    if column in silver.columns:
        return "error", "silver types it"
    if column in needed:
        return "error", needed[column]
    return "warn", "on_missing_column: auto"


def check_drift(
    drift: Drift,
    policy: SchemaPolicy,
    silver: SilverConfig,
    bronze: TableRef,
    needed: Mapping[str, str] | None = None,
) -> tuple[Finding, ...]:
    """Apply ``policy`` to ``drift``: the findings to record, or a DataError (carrying them)
    naming every column the policy refuses. Nothing has been loaded when it raises, and the
    findings then say what *would* have happened to the columns the policy lets through.

    ``needed``: columns other sources need of this bronze (those derived from it: their
    ``where``, keys and typed columns), each with why; ``auto`` fails for them too."""
    needed = needed or {}
    on_new = policy.on_new_column or DEFAULT_ON_NEW_COLUMN
    on_missing = policy.on_missing_column or DEFAULT_ON_MISSING_COLUMN
    by_outcome: dict[tuple[Severity, str], list[str]] = {}
    for column in drift.missing:
        by_outcome.setdefault(_missing_outcome(column, on_missing, silver, needed), []).append(
            column
        )
    refused = [
        f"{_plural(cols, 'column', 'columns')} {_names(cols)} missing from this pull ({why})"
        for (severity, why), cols in by_outcome.items()
        if severity == "error"
    ]
    new_noun = _plural(drift.new, "column", "columns")
    if drift.new and on_new == "fail":
        refused.append(f"new {new_noun} {_names(drift.new)} in this pull (on_new_column: fail)")
    would = "would " if refused else ""

    findings: list[Finding] = []
    for (severity, why), cols in by_outcome.items():
        what = f"{_plural(cols, 'column', 'columns')} {_names(cols)} missing from this pull"
        if severity == "error":
            message = f"{what} ({why}); refused"
        else:
            they = _plural(cols, "it", "they")
            load = f"{would}load" if would else _plural(cols, "loads", "load")
            message = (
                f"{what}: {they} {load} as NULL (bronze {bronze} keeps "
                f"{_plural(cols, 'it', 'them')}; {why})"
            )
        findings.append(
            Finding(
                "missing_column",
                message,
                severity,
                count=len(cols),
                data={"columns": cols, "policy": on_missing},
            )
        )
    if drift.new:
        what = f"new {new_noun} {_names(drift.new)} in this pull"
        if on_new == "fail":
            message, severity = f"{what} (on_new_column: fail); refused", "error"
        else:
            added = "would be added" if would else "added"
            message, severity = f"{what}: {added} to bronze {bronze} as VARCHAR", "info"
        findings.append(
            Finding(
                "new_column",
                message,
                severity,
                count=len(drift.new),
                data={"columns": list(drift.new), "policy": on_new},
            )
        )
    hint = ""
    if renamed := drift.renamed:
        old, new = renamed
        hint = f"{old} looks renamed to {new}"
        findings.append(
            Finding(
                "renamed_column",
                f"{hint} ({old} left and {new} arrived in this pull)",
                "warn",
                data={"from": old, "to": new},
            )
        )
    if refused:
        parts = [*refused, *([hint] if hint else [])]
        raise DataError(
            f"schema drift against bronze {bronze}: {'; '.join(parts)}; "
            "nothing loaded (see schema_policy)",
            findings=findings,
        )
    return tuple(findings)
