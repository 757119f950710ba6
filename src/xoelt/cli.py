"""The ``xoelt`` command: parse arguments, call one core function, render. Nothing else.

Errors are turned into a one-line message and an exit code in exactly one place
(:class:`XoeltGroup`): 2 for bad input, 1 for a failed run; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from xoelt import __version__
from xoelt.stages import STAGES


class XoeltGroup(click.Group):
    """Runs a command and maps expected errors to messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        from xoelt import interrupts
        from xoelt.errors import XoeltError

        try:
            with interrupts.handling():
                return super().invoke(ctx)
        except interrupts.Interrupted as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:  # click's own three-line usage text, as one line
            where = exc.ctx.command_path if exc.ctx else "xoelt"
            click.echo(f"error: {exc.format_message()} (see {where} --help)", err=True)
            sys.exit(exc.exit_code)
        except XoeltError as exc:
            if ctx.meta.get("xoelt.debug"):
                _traceback(exc)
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own ends (`--help`, `--version`, a prompt aborted): click handles them
        except Exception as exc:  # a bug: still one line (the traceback with --debug)
            from xoelt.redact import redact

            if ctx.meta.get("xoelt.debug"):
                _traceback(exc)
            detail = redact(f"{type(exc).__name__}: {exc}".splitlines()[0])[:500]
            click.echo(f"error: internal error: {detail} (rerun with --debug)", err=True)
            sys.exit(1)


def _traceback(exc: BaseException) -> None:
    """The whole chain on stderr, secrets masked (``--debug``)."""
    import traceback

    from xoelt.redact import redact

    click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)


def _show(report: Any, fmt: str, render: Callable[[], object]) -> None:
    """``report`` as JSON (``--format json``), else ``render()`` it for a person."""
    from xoelt import console

    if fmt == "json":
        console.print_json(report.as_dict())
    else:
        render()


@click.group(cls=XoeltGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xoelt")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    show_default=True,
    help="Logs on stderr: JSON lines off a TTY by default.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, log_format: str) -> None:
    """Move SaaS data through object storage into Snowflake or DuckDB, bronze to gold."""
    from xoelt import logging as xlog

    ctx.meta["xoelt.debug"] = debug
    xlog.configure(debug=debug, json=None if log_format == "auto" else log_format == "json")


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--target", "-t", default=None, help="Target name (default $XOELT_TARGET or local)."
    )(fn)
    fn = click.option(
        "--date",
        "-d",
        "when",
        default=None,
        help="Run date YYYY-MM-DD (or instant YYYY-MM-DDTHH:MM); default now.",
    )(fn)
    return click.argument("pipeline")(fn)


@cli.command()
@click.argument("paths", nargs=-1)
def validate(paths: tuple[str, ...]) -> None:
    """Check pipeline files (default: every file under pipelines/)."""
    from xoelt.core import validate_all

    result = validate_all(list(paths))
    for path in result.ok:
        click.echo(f"ok     {path}")
    for problem in result.problems:
        click.echo(f"error  {problem}", err=True)
    if not result.ok and not result.problems:
        where = f" under {result.looked_in}" if result.looked_in else ""
        click.echo(f"error: no pipeline files found{where}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@_common
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--no-sql", is_flag=True, help="Leave the SQL out of the text output.")
def plan(pipeline: str, when: str | None, target: str | None, fmt: str, no_sql: bool) -> None:
    """Show what a run would do: window, object keys, tables, SQL. No I/O, no credentials."""
    from xoelt import console
    from xoelt.core import make_plan

    run_plan = make_plan(pipeline, when, target)
    _show(run_plan, fmt, lambda: console.render_plan(run_plan, show_sql=not no_sql))


def _run(
    pipeline: str,
    when: str | None,
    target: str | None,
    source: str | None,
    stages: tuple[str, ...],
    fmt: str,
) -> None:
    from xoelt import console
    from xoelt.core import execute, make_plan

    run_plan = make_plan(pipeline, when, target)
    with console.extract_progress(enabled=fmt == "text" and "extract" in stages) as listener:
        report = execute(run_plan, stages=stages, source=source, progress=listener)
    _show(report, fmt, lambda: console.render_report(report))


@cli.command()
@_common
@click.option("--source", "-s", default=None, help="Only this source.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def run(pipeline: str, when: str | None, target: str | None, source: str | None, fmt: str) -> None:
    """Run extract → stage → load → transform for one window."""
    _run(pipeline, when, target, source, tuple(STAGES), fmt)


FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
TARGET = click.option(
    "--target", "-t", default=None, help="Target name (default $XOELT_TARGET or local)."
)


_JOB_FLAGS = {"slices": "--slices", "parallelism": "--parallelism",
              "max_failed": "--max-failed-slices", "values_files": "--values"}  # fmt: skip


@cli.command()
@click.argument("pipeline")
@click.option("--start", "first", required=True, help="First run date (YYYY-MM-DD), inclusive.")
@click.option("--end", "last", required=True, help="Last run date (YYYY-MM-DD), inclusive.")
@TARGET
@click.option("--force", is_flag=True, help="Redo windows the ledger shows done.")
@click.option(
    "--workers", default=1, show_default=True, help="Windows at once, if the target allows."
)
@click.option("--keep-going", is_flag=True, help="Run the remaining windows after a failure.")
@click.option("--dry-run", is_flag=True, help="List the windows and stop.")
@click.option("--slice", "part", default=None, help="Only slice I of N of the windows (I/N).")
@click.option(
    "--emit-k8s-job", is_flag=True, help="Print an Indexed Job running the slices; run nothing."
)
@click.option("--slices", type=int, default=None, help="With --emit-k8s-job: slices (pods).")
@click.option("--parallelism", type=int, default=None, help="With --emit-k8s-job: pods at once.")
@click.option(
    "--max-failed-slices", type=int, default=None, help="With --emit-k8s-job: stop after."
)
@click.option(
    "--values",
    "values_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --emit-k8s-job: chart values files, merged in order over the chart defaults.",
)
@FORMAT
def backfill(
    pipeline: str,
    first: str,
    last: str,
    target: str | None,
    force: bool,
    workers: int,
    keep_going: bool,
    dry_run: bool,
    part: str | None,
    emit_k8s_job: bool,
    slices: int | None,
    parallelism: int | None,
    max_failed_slices: int | None,
    values_files: tuple[Path, ...],
    fmt: str,
) -> None:
    """Run every scheduled window whose run date falls in --start..--end."""
    from xoelt import backfill as bf
    from xoelt import console
    from xoelt.timewindow import parse_date

    start, end = parse_date(first, "--start"), parse_date(last, "--end")
    job = {"slices": slices, "parallelism": parallelism, "max_failed": max_failed_slices,
           "values_files": values_files}  # fmt: skip
    if emit_k8s_job:
        from xoelt.k8sjob import emit_job

        if part or dry_run:
            raise click.UsageError("--emit-k8s-job prints a Job: no --slice or --dry-run with it")
        emitted = emit_job(pipeline, start, end, target, slices=slices, parallelism=parallelism,
                           max_failed=max_failed_slices, values_files=values_files, force=force,
                           keep_going=keep_going)  # fmt: skip
        for note in emitted.notes:
            click.echo(f"note: {note}", err=True)
        click.echo(emitted.as_yaml(), nl=False)
        return
    if given := [_JOB_FLAGS[k] for k, v in job.items() if v is not None and v != ()]:
        raise click.UsageError(f"{', '.join(given)} only go with --emit-k8s-job")
    part_of = bf.Slice.parse(part) if part else None
    plans = bf.plan_windows(pipeline, start, end, target)
    if part_of:
        plans = bf.slice_windows(plans, part_of)
    if dry_run:
        console.render_windows(plans, fmt)
        return
    with console.backfill_progress(len(plans), enabled=fmt == "text") as advance:
        result = bf.backfill(
            plans, force=force, workers=workers, keep_going=keep_going, on_window=advance
        )
    console.render_backfill(result.outcomes, fmt)
    if result.interrupted:
        stopped = next((o.error for o in result.outcomes if o.status == "interrupted"), "")
        click.echo(
            f"error: {stopped or 'interrupted'}; windows marked not_run were not started "
            "(rerun the backfill to resume)",
            err=True,
        )
    elif result.failed:
        click.echo(f"error: {result.failed[0].error}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("pipeline")
@TARGET
@FORMAT
def status(pipeline: str, target: str | None, fmt: str) -> None:
    """Row counts per layer (bronze, silver, gold) and the latest ledger entries."""
    from xoelt import console
    from xoelt.core import make_plan
    from xoelt.core import status as core_status

    report = core_status(make_plan(pipeline, None, target))
    _show(report, fmt, lambda: console.render_status(report, pipeline))


@cli.command()
@click.argument("pipeline", required=False)
@click.option(
    "--days", default=30, show_default=True, type=click.IntRange(min=1), help="Days covered."
)
@click.option("--until", default=None, help="Last day covered (YYYY-MM-DD); default today (UTC).")
@click.option(
    "--out",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write.",
)
@TARGET
@FORMAT
def report(
    pipeline: str | None, days: int, until: str | None, out: str, target: str | None, fmt: str
) -> None:
    """Write the run-history report (one self-contained HTML file) and print its path."""
    from pathlib import Path

    from xoelt.report import write_report
    from xoelt.timewindow import parse_date

    last = parse_date(until, "--until") if until else None
    result = write_report(pipeline, days=days, out=Path(out), target=target, until=last)
    _show(result, fmt, lambda: click.echo(result.path))


@cli.command("test")
@_common
@FORMAT
def datatest(pipeline: str, when: str | None, target: str | None, fmt: str) -> None:
    """Run the data tests of silver and gold for one window; record them in XOELT.TEST_RESULTS."""
    from xoelt import console
    from xoelt.core import data_tests, make_plan

    report = data_tests(make_plan(pipeline, when, target))
    _show(report, fmt, lambda: console.render_data_tests(report))
    for o in report.failed:
        click.echo(f"error: data test {o.test_name} failed on {o.table}: {o.message}", err=True)
    sys.exit(report.exit_code)


@cli.command("helm-values")
@click.option("--image", default=None, help="Also set image: from REPO[:TAG][@sha256:…].")
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False),
    default=None,
    help="Regenerate the pipelines: block of this values file in place.",
)
@click.option("--check", is_flag=True, help="With --write: change nothing, exit 1 if out of date.")
def helm_values(image: str | None, write_to: str | None, check: bool) -> None:
    """Print the Helm chart's pipelines: values (one CronJob each) from pipelines/."""
    from pathlib import Path

    from xoelt import deploy

    if write_to is None:
        if check:
            raise click.UsageError("--check needs --write VALUES_FILE")
        click.echo(deploy.values_yaml(deploy.helm_values(image=image)), nl=False)
        return
    if image:
        raise click.UsageError("--image prints values; it cannot be combined with --write")
    changed = deploy.write_values_file(Path(write_to), dry_run=check)
    if check and changed:
        click.echo(
            f"{write_to}: pipelines: is out of date; run xoelt helm-values --write {write_to}",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{'updated' if changed else 'up to date'}: {write_to}", err=True)


@cli.command("list")
@FORMAT
@click.option("--now", default=None, help="List as of this instant (ISO with offset); default now.")
def list_(fmt: str, now: str | None) -> None:
    """Every pipeline: schedule, zone, sources, and the next three runs with their windows."""
    from datetime import datetime

    from xoelt import console
    from xoelt.errors import InputError
    from xoelt.listing import list_pipelines

    try:
        moment = datetime.fromisoformat(now) if now else None
    except ValueError:
        raise InputError(f"--now {now!r} is not an ISO datetime (2026-11-01T12:00-04:00)") from None
    report = list_pipelines(now=moment)
    _show(report, fmt, lambda: console.render_listing(report))
    for problem in report.problems:
        click.echo(f"error  {problem}", err=True)
    sys.exit(report.exit_code)


@cli.command()
@click.argument("pipelines", nargs=-1)
@TARGET
@click.option("--timeout", default=20.0, show_default=True, help="Seconds each check may take.")
@FORMAT
def doctor(pipelines: tuple[str, ...], target: str | None, timeout: float, fmt: str) -> None:
    """Check credentials, buckets, warehouse, stage and each source (default: all pipelines)."""
    from xoelt import console
    from xoelt.doctor import doctor as run_doctor

    report = run_doctor(pipelines, target, timeout=timeout)
    _show(report, fmt, lambda: console.render_doctor(report))
    for check in report.failed:
        click.echo(f"error: {check.check} {check.subject}: {check.detail}", err=True)
    sys.exit(report.exit_code)


@cli.command()
@TARGET
@click.option("--database", default=None, help="Database to migrate (default: the pipelines').")
@click.option("--dry-run", is_flag=True, help="List what would be applied; change nothing.")
@FORMAT
def migrate(target: str | None, database: str | None, dry_run: bool, fmt: str) -> None:
    """Apply the change scripts in sql/migrations (schemachange's V__, R__, A__ conventions)."""
    from xoelt import console
    from xoelt.migrate import migrate as run_migrate

    report = run_migrate(target, dry_run=dry_run, database=database)
    _show(report, fmt, lambda: console.render_migrate(report))


@cli.command()
@click.argument("pipelines", nargs=-1)
@click.option(
    "--deadline",
    default="2h",
    show_default=True,
    help="How long after its scheduled time a window may take (2h, 90m, 1d).",
)
@TARGET
@click.option(
    "--now", default=None, help="Check as of this instant (ISO with offset); default now."
)
@FORMAT
def watchdog(
    pipelines: tuple[str, ...], deadline: str, target: str | None, now: str | None, fmt: str
) -> None:
    """Exit 1 (and alert) when a pipeline's latest scheduled window did not succeed in time."""
    from datetime import datetime

    from xoelt import console
    from xoelt.errors import InputError
    from xoelt.watchdog import parse_deadline
    from xoelt.watchdog import watchdog as run_watchdog

    try:
        moment = datetime.fromisoformat(now) if now else None
    except ValueError:
        raise InputError(f"--now {now!r} is not an ISO datetime (2026-11-04T09:00-05:00)") from None
    report = run_watchdog(pipelines, parse_deadline(deadline), target, now=moment)
    _show(report, fmt, lambda: console.render_watchdog(report))
    for w in report.missed:
        click.echo(
            f"error: {w.pipeline}: window {w.plan.window.label} missed: {w.detail}", err=True
        )
    sys.exit(report.exit_code)


def _stage_command(name: str, help_text: str) -> None:
    @cli.command(name=name, help=help_text)
    @_common
    @click.option("--source", "-s", default=None, help="Only this source.")
    @click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
    )
    def command(
        pipeline: str, when: str | None, target: str | None, source: str | None, fmt: str
    ) -> None:
        _run(pipeline, when, target, source, (name,), fmt)


for _stage in STAGES.values():
    _stage_command(_stage.name, _stage.help)


def main() -> None:
    cli(prog_name="xoelt")


if __name__ == "__main__":
    main()
