"""Human output: plans and run reports as rich text on stdout (JSON when asked)."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from xoelt.stages import STAGES

if TYPE_CHECKING:
    from xoelt.core import DataTestRun, RunReport, StatusReport
    from xoelt.doctor import DoctorReport
    from xoelt.listing import ListReport
    from xoelt.migrate import MigrateReport
    from xoelt.plan import RunPlan, SourcePlan
    from xoelt.progress import ExtractCounts, ProgressListener
    from xoelt.watchdog import WatchdogReport


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


def print_json(data: Any) -> None:
    import sys

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _size(n: int) -> str:
    """Bytes as the largest binary unit that divides them (``128 MiB``), else bytes."""
    for unit, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} bytes"


def render_plan(plan: RunPlan, show_sql: bool = True) -> None:
    from rich.markup import escape

    c = _console()
    w = plan.window
    c.print(f"[bold]pipeline[/] {plan.name}  ({plan.pipeline.path})")
    c.print(f"[bold]target[/]   {plan.target_name} ({plan.target.type})")
    c.print(f"[bold]schedule[/] {plan.pipeline.dag.schedule}  {w.timezone}")
    c.print(f"[bold]window[/]   {w.refresh_type} {escape(w.label)}  ({w.duration})")
    for sp in plan.sources:
        c.print()
        if sp.derived:
            c.print(
                f"[bold cyan]source {sp.name}[/] (derived from {sp.parent}, {sp.load_strategy})"
            )
            c.print(f"  from     {sp.parent}'s bronze {sp.bronze_table}")
            c.print(f"  where    {escape(sp.where or '(every row)')}")
            c.print(f"  silver   {sp.silver_table}")
            if sp.silver.tests:
                c.print(f"  tests    {escape(', '.join(t.label for t in sp.silver.tests))}")
            _plan_sql(c, sp, show_sql)
            continue
        c.print(f"[bold cyan]source {sp.name}[/] ({sp.source_type}, {sp.load_strategy})")
        if sp.request:
            c.print(f"  request  {escape(json.dumps(sp.request, default=str))}")
        c.print(f"  ingest   {sp.ingest_bucket}/{sp.ingest_key}")
        c.print(
            f"  output   {sp.format} in parts of {_size(sp.output.part_size)} "
            f"(part-00001… once a part is full)"
        )
        c.print(f"  stage    {sp.stage_bucket}/{sp.stage_key}")
        c.print(f"  bronze   {sp.bronze_table}")
        c.print(f"  silver   {sp.silver_table if sp.has_silver else '(disabled: bronze only)'}")
        if sp.silver.tests:
            c.print(f"  tests    {escape(', '.join(t.label for t in sp.silver.tests))}")
        _plan_sql(c, sp, show_sql)
    if plan.dbt is not None:
        d = plan.dbt
        c.print()
        c.print(f"[bold cyan]gold[/] by dbt build  {escape(str(d.project_dir))}")
        if d.select or d.exclude:
            chosen = " ".join(d.select) or "(all)"
            c.print(
                f"  select   {escape(chosen)}"
                + (f"  exclude {escape(' '.join(d.exclude))}" if d.exclude else "")
            )
        profile = (
            f"{d.profiles_dir} (target {d.target or 'default'})"
            if d.profiles_dir
            else f"generated for target {plan.target_name} ({plan.target.warehouse.type})"
        )
        c.print(f"  profile  {escape(profile)}")
        c.print(f"  vars     {escape(', '.join(d.as_dict()['vars']))}")
    if plan.gold:
        c.print()
        c.print("[bold cyan]gold[/] (in dependency order)")
        for g in plan.gold:
            # another database's tables show as three-part names (CORE_DB.GOLD.DIM_AGENTS)
            reads = [*g.depends_on, *map(str, g.reads)]
            deps = f" ← {', '.join(reads)}" if reads else ""
            c.print(f"  {g.table}{deps}  [dim]{g.path}[/]")
            if g.tests:
                c.print(f"    tests  {escape(', '.join(t.label for t in g.tests))}")


def _plan_sql(c: Any, sp: SourcePlan, show_sql: bool) -> None:
    from rich.markup import escape

    if show_sql:
        for stage, statements in sp.sql.items():
            c.print(f"  [dim]-- {stage}[/]")
            for stmt in statements:
                c.print(f"  [dim]{escape(stmt)};[/]")


def render_report(report: RunReport) -> None:
    from rich.table import Table

    c = _console()
    table = Table(title=f"{report.plan.name}  {report.plan.window.label}", title_justify="left")
    table.add_column("source")
    for stage in STAGES.values():
        table.add_column(stage.label, justify="right")
    for s in report.sources:
        table.add_row(s.name, *[f"{s.rows[k]:,}" if k in s.rows else "-" for k in STAGES])
    c.print(table)
    if report.gold:
        gold = Table(title="gold", title_justify="left")
        gold.add_column("model")
        gold.add_column("rows", justify="right")
        for name, rows in report.gold.items():
            gold.add_row(name, f"{rows:,}")
        c.print(gold)
    for s in report.sources:
        for f in s.findings:
            _print_finding(c, s.name, "", f.as_dict())
    c.print(f"run_id {report.run_id}")
    if report.warehouse_path:
        c.print(f"warehouse {report.warehouse_path}")


def render_status(report: StatusReport, title: str) -> None:
    from rich.table import Table

    counts, runs = report.tables, report.runs
    c = _console()
    table = Table(title=f"{title}: rows per layer", title_justify="left")
    for col, justify in (("layer", "left"), ("table", "left"), ("rows", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for item in counts:
        table.add_row(item.layer, item.table, "-" if item.rows is None else f"{item.rows:,}")
    c.print(table)
    if runs:
        first = runs[0]
        recent = Table(
            title=f"latest run {first['run_id']}, window from {first['window_start']}",
            title_justify="left",
        )
        for col, justify in (
            ("source", "left"),
            ("stage", "left"),
            ("status", "left"),
            ("rows", "right"),
        ):
            recent.add_column(col, justify=justify)  # type: ignore[arg-type]
        for r in runs:
            recent.add_row(r["source"], r["stage"], r["status"], _cell(r["rows"]))
        c.print(recent)
        for r in runs:
            if r["status"] != "success" and r.get("message"):
                c.print(f"[red]{r['source']} {r['stage']}[/]: {r['message']}", markup=True)
            for f in r.get("findings", []):
                _print_finding(c, r["source"], r["stage"], f)
    c.print(f"warehouse: [bold]{report.warehouse}[/]")


_SEVERITY_STYLE = {"info": "dim", "warn": "yellow", "error": "red"}


def _print_finding(c: Any, source: str, stage: str, finding: dict[str, Any]) -> None:
    """One line per finding: severity, where, kind, message (markup-free: data text)."""
    from rich.text import Text

    severity = finding.get("severity", "info")
    where = f"{source} {stage}".strip()
    line = Text(f"{severity}: ", style=_SEVERITY_STYLE.get(severity, ""))
    line.append(f"{where} {finding.get('kind', '')}: {finding.get('message', '')}")
    c.print(line)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def render_windows(plans: list[Any], fmt: str) -> None:
    """The windows a backfill would run (``--dry-run``)."""
    rows = [
        {"window_start": p.window.start.isoformat(), "window_end": p.window.end.isoformat()}
        for p in plans
    ]
    if fmt == "json":
        print_json(rows)
        return
    c = _console()
    for r in rows:
        c.print(f"{r['window_start']}  →  {r['window_end']}")
    c.print(f"{len(rows)} window(s)")


@contextmanager
def backfill_progress(total: int, enabled: bool) -> Generator[Callable[[Any], None]]:
    """A rich progress bar on a TTY (stderr); a no-op callback elsewhere."""
    import sys

    if not enabled or not sys.stderr.isatty():
        yield lambda _outcome: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=Console(stderr=True),
    ) as progress:  # fmt: skip
        task = progress.add_task("", total=total)

        def advance(outcome: Any) -> None:
            progress.update(
                task, advance=1, description=f"{outcome.plan.window.start.date()} {outcome.status}"
            )

        yield advance


@contextmanager
def extract_progress(enabled: bool) -> Generator[ProgressListener | None]:
    """A rich bar per source while it extracts (rows, bytes of CSV, API pages), on stderr.

    Only when ``enabled`` (text output, an extract in the run), stderr is a TTY and logs
    are not JSON; otherwise None, and nothing extra is written anywhere.
    """
    import sys

    from xoelt.logging import json_mode

    if not enabled or not sys.stderr.isatty() or json_mode():
        yield None
        return
    from rich.console import Console
    from rich.filesize import decimal
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("extract {task.description}"), BarColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"), TextColumn("{task.fields[size]:>9}"),
        TextColumn("{task.fields[pages]:>6,} pages"), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:  # fmt: skip
        tasks: dict[str, Any] = {}

        def listener(counts: ExtractCounts) -> None:
            rows, size, pages = counts.rows, decimal(counts.bytes), counts.pages
            if counts.source not in tasks:  # total unknown: the bar pulses until done
                tasks[counts.source] = progress.add_task(
                    counts.source, total=None, rows=rows, size=size, pages=pages
                )
            task = tasks[counts.source]
            if counts.done:  # the bar fills
                progress.update(task, total=1, completed=1, rows=rows, size=size, pages=pages)
            else:
                progress.update(task, rows=rows, size=size, pages=pages)

        yield listener


def render_backfill(outcomes: list[Any], fmt: str) -> None:
    rows = [
        {
            "window_start": o.plan.window.start.isoformat(),
            "status": o.status,
            "rows_loaded": o.rows,
            "error": o.error,
        }
        for o in outcomes
    ]
    if fmt == "json":
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="backfill", title_justify="left")
    for col, justify in (("window", "left"), ("status", "left"), ("rows loaded", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r["window_start"], r["status"], f"{r['rows_loaded']:,}")
    _console().print(table)


_STATUS_STYLE = {"pass": "green", "fail": "bold red", "skip": "dim"}


def render_doctor(report: DoctorReport) -> None:
    """The pass/fail table, then a count line."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"xoelt doctor: target {report.target}", title_justify="left")
    for col in ("check", "subject", "status", "detail"):
        table.add_column(col, overflow="fold")  # never cut: a log must show the whole reason
    for c in report.checks:
        status = Text(c.status.upper(), style=_STATUS_STYLE.get(c.status, ""))
        table.add_row(c.check, c.subject, status, Text(c.detail))
    c = _console()
    c.print(table)
    counts = {k: sum(1 for x in report.checks if x.status == k) for k in ("pass", "fail", "skip")}
    c.print(f"doctor: {counts['pass']} ok, {counts['fail']} failing, {counts['skip']} skipped")


def render_listing(report: ListReport) -> None:
    """Each pipeline with its sources and next runs (DST-affected runs marked)."""
    from rich.markup import escape

    c = _console()
    for p in report.pipelines:
        c.print(f"[bold]{p.name}[/]  [dim]{p.path}[/]")
        c.print(f"  schedule {escape(p.schedule)}  {p.timezone}  ({p.refresh_type})")
        for s in p.sources:
            c.print(f"  source   {s['name']} ({s['source_type']}, {s['load_strategy']})")
        for run in p.next_runs:
            w = run.window
            mark = f"  [yellow]DST: {escape(run.dst)}[/]" if run.dst else ""
            c.print(f"  next     {run.at.isoformat()}  loads {escape(w.label)}{mark}")
        c.print()
    c.print(f"{len(report.pipelines)} pipeline(s) under {escape(report.looked_in)}")


def render_migrate(report: MigrateReport) -> None:
    """The change scripts in the order they (would) apply."""
    from rich.table import Table

    verb = "would apply" if report.dry_run else "applied"
    title = f"migrations for {report.database} ({report.location})"
    table = Table(title=title, title_justify="left")
    for col in ("script", "type", "version", "action", "why"):
        table.add_column(col)
    for step in report.steps:
        s = step.script
        action = verb if step.action in ("apply", "applied") else step.action
        table.add_row(s.name, s.kind, s.version or "-", action, step.reason)
    c = _console()
    if report.steps:
        c.print(table)
    changed = sum(1 for s in report.steps if s.action in ("apply", "applied"))
    c.print(f"{changed} script(s) {verb}; change scripts from {report.folder}")


_WATCH_STYLE = {"ok": "green", "late": "yellow", "pending": "dim", "missed": "bold red"}


def render_watchdog(report: WatchdogReport) -> None:
    """One row per pipeline: scheduled at, window, status; then a count line."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"xoelt watchdog: deadline {report.deadline}, now {report.now.isoformat()}",
        title_justify="left",
    )
    for col in ("pipeline", "scheduled at", "window", "status", "detail"):
        table.add_column(col, overflow="fold")
    for w in report.windows:
        status = Text(w.status, style=_WATCH_STYLE.get(w.status, ""))
        table.add_row(
            w.pipeline, w.scheduled_at.isoformat(), w.plan.window.label, status, Text(w.detail)
        )
    c = _console()
    c.print(table)
    counts = {k: sum(1 for w in report.windows if w.status == k) for k in _WATCH_STYLE}
    c.print(", ".join(f"{n} {k}" for k, n in counts.items()))


_TEST_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def render_data_tests(report: DataTestRun) -> None:
    """One row per data test (status, failing rows, message), then a count line."""
    from rich.table import Table
    from rich.text import Text

    window = report.plan.window.label
    table = Table(title=f"{report.plan.name}: data tests, window {window}", title_justify="left")
    for col in ("source", "test", "table", "status", "failing", "detail"):
        table.add_column(col, overflow="fold", justify="right" if col == "failing" else "left")
    for o in report.outcomes:
        status = Text(o.status.upper(), style=_TEST_STYLE[o.status])
        failing = "-" if o.failing_rows is None else f"{o.failing_rows:,}"
        detail = o.message + (f" e.g. {json.dumps(o.examples, default=str)}" if o.examples else "")
        table.add_row(o.source, o.test_name, str(o.table), status, failing, Text(detail))
    c = _console()
    if report.outcomes:
        c.print(table)
    counts = {k: sum(1 for o in report.outcomes if o.status == k) for k in _TEST_STYLE}
    c.print(
        f"data tests: {counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed"
        f" (run {report.run_id}, in XOELT.TEST_RESULTS)"
    )
