"""Findings: what a run noticed about the data, kept in the ledger and shown by ``status``.

A finding is how "nothing changes silently" is kept: a column that appeared or vanished,
values that did not convert, an API answer split because it hit a cap, items a source left
out. Whoever notices one (a source through :class:`~xoelt.sources.base.ExtractContext`, a
stage through :class:`~xoelt.stages.StageResult`, a failure through the error it raises)
hands it on as data; :func:`xoelt.core.execute` writes every finding of a stage to that
stage's ledger row (``DETAILS``), success or failure, and ``status`` prints them.

Messages are one line and hold no secrets (values quoted in them come from the data, never
from configuration).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warn", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warn", "error")


@dataclass(frozen=True)
class Finding:
    """One thing noticed: ``kind`` (e.g. ``new_column``), a one-line ``message``, how many
    rows or values it concerns, and JSON-able ``data`` (column names, example values)."""

    kind: str
    message: str
    severity: Severity = "info"
    count: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
        }
        if self.count is not None:
            out["count"] = self.count
        if self.data:
            out["data"] = dict(self.data)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Finding:
        severity = raw.get("severity", "info")
        return cls(
            kind=str(raw.get("kind", "")),
            message=str(raw.get("message", "")),
            severity=severity if severity in SEVERITIES else "info",
            count=raw.get("count"),
            data=dict(raw.get("data") or {}),
        )


def as_details(findings: Iterable[Finding]) -> dict[str, Any]:
    """The ledger ``DETAILS`` form of some findings (``{}`` when there are none)."""
    items = [f.as_dict() for f in findings]
    return {"findings": items} if items else {}


def from_details(details: Mapping[str, Any] | None) -> list[Finding]:
    """The findings in a ledger ``DETAILS`` value (the inverse of :func:`as_details`)."""
    return [Finding.from_dict(f) for f in (details or {}).get("findings", [])]
