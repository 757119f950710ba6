"""Gladly ``kind: conversation_export``: the org's scheduled export jobs, NDJSON flattened to CSV.

No ad-hoc jobs exist. The COMPLETED jobs are listed, the fewest whose ``parameters`` cover the
window are chosen (:func:`choose_jobs`), one NDJSON file of each (``export_file``) is streamed
to disk and flattened to CSV (:meth:`ConversationExport.extract`).

**Segments.** Each chosen job supplies one *segment*: the part of the window from where the
previous job's period ends to where its own ends. A line whose ``time_field`` is in the
segment is kept. One outside it is, in this order:

- ``outside_window``: its time is outside our window. It is another window's item (its own
  run reads it from a job covering its time); dropped, counted (an ``info`` finding).
- ``supplied_elsewhere``: inside our window, in another chosen job's segment, and that job
  holds an item with the same ``id`` in its segment (overlapping jobs); dropped, counted.
- ``outside_segment``: inside our window, and no chosen job supplies it in its segment (a
  job holding items its period does not explain, or overlapping jobs that disagree). We
  cannot tell whether it is lost or stale, so it is an ``error`` finding naming up to 3
  ids, and more than ``max_outside_segment`` of them (default 0) fails the run; up to that
  many are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from xoelt.errors import SourceError
from xoelt.findings import Finding
from xoelt.sources._gladly import JOBS_PATH, GladlyKind
from xoelt.sources.base import CsvSink, ExtractContext
from xoelt.sources.http import HttpClient
from xoelt.sources.ratelimit import RateLimits
from xoelt.timewindow import TimeWindow

# Jobs can be listed (and files fetched) for 14 days; ask a little less so clock skew between
# us and Gladly never makes startAt "more than 14 days ago".
LISTABLE = timedelta(days=14) - timedelta(minutes=5)
# The header written when an export has no rows in the window (the documented required fields).
EMPTY_EXPORT_COLUMNS = {
    "conversation_items.jsonl": ["id", "conversationId", "customerId", "timestamp"]
}


def _instant(value: Any) -> datetime:
    """An RFC 3339 time (nanoseconds are cut to microseconds; no offset means UTC)."""
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    moment = datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ExportJob:
    """A COMPLETED conversation export job: the period it covers and its files."""

    id: str
    start: datetime
    end: datetime
    updated: datetime
    files: tuple[str, ...]


def parse_jobs(payload: Any, where: str) -> list[ExportJob]:
    """The completed CONVERSATIONS jobs in a ``GET /export/jobs`` answer; malformed = error."""
    if not isinstance(payload, list):
        raise SourceError(
            f"{where}: expected a JSON array of export jobs, got {type(payload).__name__}"
        )
    jobs = []
    for item in payload:
        try:
            if item.get("status") != "COMPLETED":
                continue
            params = item["parameters"]
            if params.get("type", "CONVERSATIONS") != "CONVERSATIONS":
                continue
            if not isinstance(item["id"], str) or not item["id"]:
                raise ValueError("id")
            files = item.get("files") or []
            jobs.append(
                ExportJob(
                    item["id"],
                    _instant(params["startAt"]),
                    _instant(params["endAt"]),
                    _instant(item.get("updatedAt") or params["endAt"]),
                    tuple(f for f in files if isinstance(f, str)),
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{where}: malformed export job: {json.dumps(item)[:200]}") from exc
    return jobs


def choose_jobs(
    jobs: list[ExportJob], start: datetime, end: datetime
) -> list[tuple[ExportJob, datetime, datetime]] | datetime:
    """The fewest jobs covering ``[start, end)``, each with the disjoint segment it supplies.

    Greedy interval cover: from the uncovered instant take the job reaching furthest (a re-run
    of the same period: the latest ``updatedAt``). Returns the first uncovered instant if the
    jobs leave a gap.
    """
    chosen = []
    cursor = start
    while cursor < end:
        usable = [j for j in jobs if j.start <= cursor < j.end]
        if not usable:
            return cursor
        best = max(usable, key=lambda j: (j.end, j.updated))
        chosen.append((best, cursor, min(best.end, end)))
        cursor = best.end
    return chosen


def flatten(
    obj: dict[str, Any], prefix: str = "", out: dict[str, str | None] | None = None
) -> dict[str, str | None]:
    """Nested objects become dotted keys (``initiator.id``); lists and scalars become JSON
    text; a JSON ``null`` is a missing value (``None``: NULL in bronze), not an empty string."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, f"{name}.", out)
            continue
        if name in out:
            raise ValueError(f"key {name!r} occurs twice once flattened")
        if value is None:
            out[name] = None
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return out


Part = tuple[ExportJob, datetime, datetime, Path]  # a chosen job, its segment, its file
KEEP, OUTSIDE_WINDOW, OTHER_SEGMENT = "keep", "outside_window", "other_segment"


@dataclass
class _Tally:
    """Per chosen job: lines kept and dropped, by reason (the manifest's ``jobs``)."""

    id: str
    start: datetime
    end: datetime
    rows: int = 0
    outside: int = 0  # outside our window
    supplied_elsewhere: int = 0
    outside_segment: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "from": _utc(self.start), "to": _utc(self.end), "rows": self.rows,
                "outside": self.outside, "supplied_elsewhere": self.supplied_elsewhere,
                "outside_segment": self.outside_segment}  # fmt: skip


class ConversationExport(GladlyKind):
    """The conversation export: jobs covering the window, their NDJSON file flattened."""

    API = "gladly-api"
    LIMITS = RateLimits(per_second=10)  # Gladly's default per org and method; per process

    def describe(self, window: TimeWindow) -> dict[str, Any]:
        url = self.config.url
        return {
            "method": "GET",
            "url": url + JOBS_PATH,
            "params": {"status": "COMPLETED", "startAt": _utc(window.start)},
            "then": f"GET {url}{JOBS_PATH}/<job id>/files/{self.config.export_file} "
            "for the fewest COMPLETED jobs whose parameters cover the window",
            "time_field": self.config.time_field,
            "note": "startAt is raised to 14 days ago at run time if older (Gladly's limit)",
        }

    def extract(self, client: HttpClient, ctx: ExtractContext, sink: CsvSink) -> None:
        """Choose the jobs covering the window, download their file, flatten NDJSON to CSV.

        Jobs are listed by ``updatedAt`` from the window start (a job covering any of the
        window finishes after it), but never from more than 14 days ago. Each chosen job
        supplies only the lines whose ``time_field`` falls in its own segment of the window,
        so a local day spanning two UTC-day jobs, or overlapping hourly jobs, yields each
        item once; lines without that field (or ``time_field: null``) are all kept. NDJSON
        lines differ in keys, so a first pass collects the union of columns (only the key
        set is held in memory) and a second pass writes the rows.
        """
        base = self.config.url
        window = ctx.window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        since = max(start, datetime.now(UTC) - LISTABLE)
        where = f"GET {base}{JOBS_PATH}"
        params = {"status": "COMPLETED", "startAt": _utc(since)}
        payload = client.json("GET", base + JOBS_PATH, params=params)
        jobs = parse_jobs(payload, where)
        chosen = choose_jobs(jobs, start, end)
        if isinstance(chosen, datetime):
            raise SourceError(
                f"no COMPLETED conversation export job covers {window.label} from {_utc(chosen)} "
                f"({len(jobs)} completed job(s) updated since {_utc(since)}; jobs are kept 14 "
                "days and a daily job completes overnight UTC after its period)"
            )
        name = self.config.export_file
        parts: list[Part] = []
        for i, (job, seg_start, seg_end) in enumerate(chosen):
            if name not in job.files:
                raise SourceError(
                    f"export job {job.id} has no file {name} (files: {', '.join(job.files)})"
                )
            path = ctx.workdir / f"export-{i}.jsonl"
            url = f"{base}{JOBS_PATH}/{quote(job.id, safe='')}/files/{quote(name, safe='')}"
            client.download("GET", url, path)
            parts.append((job, seg_start, seg_end, path))

        # Pass 1: the union of columns, and the ids of lines in our window but outside their
        # job's segment. Pass 2 writes, and notes which of those ids a segment supplies.
        columns: dict[str, None] = {}
        strays: dict[str, str] = {}  # id -> timestamp, of lines outside their segment
        unnamed = 0  # such lines without an id (none can prove them supplied)
        for row, where, _ in self._rows(parts, window, {}):
            if where == KEEP:
                columns.update(dict.fromkeys(row))
            elif where == OTHER_SEGMENT:
                if item := row.get("id"):
                    strays.setdefault(item, row.get(self.config.time_field or "") or "")
                else:
                    unnamed += 1
        header = list(columns) or EMPTY_EXPORT_COLUMNS.get(name, ["id"])
        sink.open(header)
        tallies: dict[str, _Tally] = {}
        supplied: set[str] = set()
        pending: list[tuple[_Tally, str]] = []
        for row, where, tally in self._rows(parts, window, tallies):
            if where == KEEP:
                sink.write_values([row.get(c) for c in header])  # absent: missing (NULL)
                if strays and (item := row.get("id")) and item in strays:
                    supplied.add(item)
            elif where == OUTSIDE_WINDOW:
                tally.outside += 1
            else:
                pending.append((tally, row.get("id") or ""))
        for tally, item in pending:
            if item and item in supplied:
                tally.supplied_elsewhere += 1
            else:
                tally.outside_segment += 1
        jobs = [t.as_dict() for t in tallies.values()]
        sink.details.update(kind="conversation_export", file=name, jobs=jobs)
        self._account(ctx, tallies, strays, supplied, unnamed)

    def _account(
        self,
        ctx: ExtractContext,
        tallies: dict[str, _Tally],
        strays: dict[str, str],
        supplied: set[str],
        unnamed: int,
    ) -> None:
        """Findings for the dropped lines; too many unexplained ones fail the run."""
        outside = sum(t.outside for t in tallies.values())
        elsewhere = sum(t.supplied_elsewhere for t in tallies.values())
        lost = sum(t.outside_segment for t in tallies.values())
        file = self.config.export_file
        if outside:
            ctx.note(Finding("export_outside_window", f"{outside} {file} line(s) of the chosen "
                             "jobs are timed outside the window (other windows' items)",
                             count=outside))  # fmt: skip
        if elsewhere:
            ctx.note(Finding("export_supplied_elsewhere", f"{elsewhere} {file} line(s) outside "
                             "their job's segment are supplied by the job covering their time",
                             count=elsewhere))  # fmt: skip
        if not lost:
            return
        examples = [f"{i} at {t}" for i, t in strays.items() if i not in supplied][:3]
        if unnamed:
            examples.append(f"{unnamed} without an id")
        jobs = ", ".join(
            f"{t.id}: {t.outside_segment}" for t in tallies.values() if t.outside_segment
        )
        finding = Finding(
            "export_outside_segment",
            f"{lost} {file} line(s) timed inside the window but outside their job's segment, "
            f"which no chosen job supplies ({jobs}; e.g. {'; '.join(examples)})",
            severity="error",
            count=lost,
            data={"jobs": {t.id: t.outside_segment for t in tallies.values()},
                  "examples": examples, "max_outside_segment": self.config.max_outside_segment},
        )  # fmt: skip
        ctx.note(finding)
        if lost > self.config.max_outside_segment:
            raise SourceError(
                f"{finding.message}: more than max_outside_segment "
                f"({self.config.max_outside_segment}); they would be lost or stale"
            )

    def _rows(
        self, parts: list[Part], window: TimeWindow, tallies: dict[str, _Tally]
    ) -> Iterator[tuple[dict[str, str | None], str, _Tally]]:
        """Every line of the chosen jobs' files, flattened, with where it belongs (KEEP...)."""
        field = self.config.time_field
        lo, hi = window.start.astimezone(UTC), window.end.astimezone(UTC)
        for job, seg_start, seg_end, path in parts:
            tally = tallies.setdefault(job.id, _Tally(job.id, seg_start, seg_end))
            label = f"export job {job.id} {self.config.export_file}"
            for number, obj in _ndjson(path, label):
                try:
                    row = flatten(obj)
                    stamp = row.get(field) if field else None
                    moment = _instant(stamp) if stamp else None
                except ValueError as exc:
                    raise SourceError(f"{label} line {number}: {exc}") from exc
                if moment is None or seg_start <= moment < seg_end:
                    tally.rows += 1
                    yield row, KEEP, tally
                elif not lo <= moment < hi:
                    yield row, OUTSIDE_WINDOW, tally
                else:
                    yield row, OTHER_SEGMENT, tally


def _ndjson(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    number = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise SourceError(f"{label} line {number}: not valid JSON ({exc})") from exc
                if not isinstance(obj, dict):
                    raise SourceError(f"{label} line {number}: expected a JSON object")
                yield number, obj
    except UnicodeDecodeError as exc:
        raise SourceError(f"{label} line {number + 1}: not UTF-8") from exc
