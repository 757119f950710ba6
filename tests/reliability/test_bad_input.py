"""Bad input, table-driven: every case exits 2 (or 1 where the input is data a run reads)
with one line naming what is wrong, no traceback, and nothing written.

Each case is a change to a copy of the demo project (the pipeline's YAML text, a targets
file) and the command to run. The CLI runs in-process (click's runner) so the hundred-odd
cases take seconds; the subprocess path is covered by tests/e2e.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import REPO
from tests.reliability.report import record
from xoelt.cli import cli

PIPE = "demo/gladly_demo"
DEMO = (REPO / "pipelines" / "demo" / "gladly_demo.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Case:
    id: str
    yaml: Callable[[str], str] | None = None  # rewrites the demo pipeline's text
    args: tuple[str, ...] = ("validate",)
    exit: int = 2
    says: str = ""  # a regex the one-line message must contain
    files: dict[str, str | bytes] = field(default_factory=dict)  # extra project files


def sub(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"case edits text the demo does not have: {old!r}"
        return text.replace(old, new, count)

    return edit


def append(extra: str) -> Callable[[str], str]:
    return lambda text: text + extra


def whole(text: str) -> Callable[[str], str]:
    return lambda _: text


def alias_bomb() -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


SCHED = '  schedule: "50 6 * * *"'
TZ = '    timezone: "America/New_York"'
DB = "    database: DEMO_DB"
PREFIX = '      prefix: "gladly/contact_timestamps/{date}/"'
STRATEGY = "    load_strategy: full_refresh"
TABLE = "      target_table: GLADLY_CONTACT_TIMESTAMPS"
TYPED = "        TIMESTAMP: TIMESTAMP_TZ"

YAML_CASES = [
    Case("empty-file", whole(""), says="file is empty"),
    Case("only-comment", whole("# nothing\n"), says="file is empty"),
    Case("top-level-list", whole("- a\n- b\n")),
    Case("top-level-scalar", whole("hello\n")),
    Case("tab-indent", sub("  domain: demo", "\tdomain: demo"), says="YAML syntax error"),
    Case("unclosed-quote", sub(SCHED, '  schedule: "50 6 * * *'), says="YAML syntax error"),
    Case("unclosed-flow", sub("lag: { days: 1 }", "lag: { days: 1"), says="YAML syntax error"),
    Case(
        "duplicate-key", sub("  domain: demo", "  domain: demo\n  domain: demo"), says="duplicate"
    ),
    Case(
        "recursive-alias",
        whole("dag: &x\n  domain: *x\n"),
        says="alias refers to the value that contains it",
    ),
    Case("deep-nesting", whole("a: " + "[" * 20000 + "\n"), says="nested more than"),
    Case("deep-block-nesting", whole("".join("  " * i + f"k{i}:\n" for i in range(60)) + "\n")),
    Case("merge-key", append("<<: {owner: x}\n"), says="merge keys"),
    Case("alias-bomb", whole(alias_bomb()), says="values"),
    Case("huge-file", whole("".join(f"k{i}: v\n" for i in range(200_000))), says="limit"),
    Case("nul-in-value", sub("  domain: demo", '  domain: "de\\0mo"'), says="control character"),
    Case("newline-in-prefix", sub(PREFIX, '      prefix: "a\\nb/{date}/"'), says="control"),
    Case("nul-in-prefix", sub(PREFIX, '      prefix: "a\\0b/{date}/"'), says="control"),
    Case("escape-in-key", sub("  domain: demo", '  "dom\\x1bain": demo'), says="control"),
    Case("bell-in-table", sub(TABLE, '      target_table: "A\\aB"'), says="control"),
    Case("non-utf8", whole(""), files={"pipelines/demo/gladly_demo.yaml": b"dag: \xff\xfe\n"}),
    Case("binary", whole(""), files={"pipelines/demo/gladly_demo.yaml": bytes(range(256))}),
    Case("complex-key", append("? [a, b]\n: c\n"), says="keys must be strings"),
    Case("bad-timestamp-value", sub(SCHED, f"{SCHED}\n  owner: 2026-13-45 10:00:00")),
    Case("huge-int", sub("lag: { days: 1 }", "lag: { days: " + "9" * 5000 + " }")),
]

SCHEMA_CASES = [
    Case("no-dag", sub("dag:", "dagg:"), says="dag"),
    Case("unknown-top-key", append("extra: 1\n"), says="extra"),
    Case("unknown-dag-key", sub("  domain: demo", "  domain: demo\n  domian: x"), says="domian"),
    Case("unknown-source-key", sub(STRATEGY, f"{STRATEGY}\n    lod_strategy: x"), says="lod"),
    Case("unknown-extractor-key", sub(PREFIX, f"{PREFIX}\n      bucekt: x"), says="bucekt"),
    Case("unknown-silver-key", sub("      table: CONTACT_TIMESTAMPS", "      tabel: X")),
    Case(
        "schedule-4-fields", sub(SCHED, '  schedule: "50 6 * *"'), says="cannot be scheduled|cron"
    ),
    Case(
        "schedule-6-fields",
        sub(SCHED, '  schedule: "0 50 6 * * *"'),
        says="cannot be scheduled|cron",
    ),
    Case("schedule-words", sub(SCHED, '  schedule: "every day"'), says="cannot be scheduled|cron"),
    Case(
        "schedule-minute-60",
        sub(SCHED, '  schedule: "60 6 * * *"'),
        says="cannot be scheduled|cron",
    ),
    Case(
        "schedule-hour-24", sub(SCHED, '  schedule: "0 24 * * *"'), says="cannot be scheduled|cron"
    ),
    Case("schedule-empty", sub(SCHED, '  schedule: ""'), says="cannot be scheduled|cron"),
    Case("schedule-number", sub(SCHED, "  schedule: 5")),
    Case("timezone-unknown", sub(TZ, '    timezone: "Mars/Olympus"'), says="timezone"),
    Case("timezone-empty", sub(TZ, '    timezone: ""'), says="timezone"),
    Case("timezone-path", sub(TZ, '    timezone: "../../etc/passwd"'), says="timezone"),
    Case("refresh-type", sub("refresh_type: daily", "refresh_type: hourly")),
    Case("lag-negative", sub("lag: { days: 1 }", "lag: { days: -1 }")),
    Case("lag-hours-daily", sub("lag: { days: 1 }", "lag: { hours: 3 }"), says="whole days"),
    Case("lag-text", sub("lag: { days: 1 }", "lag: { days: one }")),
    Case(
        "relative-no-lookback",
        sub("refresh_type: daily", "refresh_type: intraday_relative"),
        says="lookback",
    ),
    Case(
        "absolute-no-times",
        sub("refresh_type: daily", "refresh_type: intraday_absolute"),
        says="start_time",
    ),
    Case("domain-space", sub("  domain: demo", "  domain: de mo")),
    Case("domain-slash", sub("  domain: demo", "  domain: ../demo")),
    Case("domain-empty", sub("  domain: demo", '  domain: ""')),
    Case("pipeline-name-dots", sub("pipeline_name: gladly_demo", "pipeline_name: ..")),
    Case("pipeline-type", sub("pipeline_type: snowflake_load", "pipeline_type: airflow")),
    Case("database-quote", sub(DB, '    database: DEMO"DB')),
    Case("database-semicolon", sub(DB, "    database: DEMO;DROP")),
    Case("database-space", sub(DB, "    database: DEMO DB")),
    Case("database-digit", sub(DB, "    database: 1DEMO")),
    Case("database-long", sub(DB, "    database: " + "D" * 300)),
    Case("database-missing", sub(DB, "    databse: DEMO_DB")),
    Case("schema-dash", sub("    schema: BRONZE", "    schema: BRO-NZE")),
    Case("bucket-upper", sub("ingest_bucket: xoelt-ingest", "ingest_bucket: Xoelt_Ingest")),
    Case("bucket-short", sub("ingest_bucket: xoelt-ingest", "ingest_bucket: xo")),
    Case("bucket-slash", sub("stage_bucket: xoelt-stage", "stage_bucket: xoelt/stage")),
    Case("no-sources", lambda t: t.split("sources:")[0] + "sources: {}\n", says="sources"),
    Case("source-name-bad", sub("  contact_timestamps:", "  contact-timestamps:")),
    Case("source-type-unknown", sub("source_type: s3_upload", "source_type: ftp"), says="valid"),
    Case("source-type-typo", sub("source_type: s3_upload", "source_type: s3_uplod")),
    Case("strategy-unknown", sub(STRATEGY, "    load_strategy: sometimes"), says="sometimes"),
    Case("strategy-list", sub(STRATEGY, "    load_strategy: [full_refresh]")),
    Case(
        "historical-no-key",
        sub(STRATEGY, "    load_strategy: historical"),
        says="primary_key",
    ),
    Case("silver-type", sub(TYPED, "        TIMESTAMP: DATETIME"), says="silver column type"),
    Case("silver-type-injection", sub(TYPED, '        TIMESTAMP: "VARCHAR); DROP TABLE X; --"')),
    Case("silver-column-bad", sub(TYPED, '        "TIME STAMP": TIMESTAMP_TZ')),
    Case("silver-key-bad", sub("      primary_key: [AGENT_ID]", '      primary_key: ["A;B"]')),
    Case("target-table-bad", sub(TABLE, "      target_table: GLADLY.CONTACTS")),
    Case("target-table-missing", sub(TABLE, "      target_tabel: X")),
    Case("extractor-bucket-missing", sub("      bucket: xoelt-landing", "      buckt: x")),
    Case(
        "shared-bronze",
        sub(
            "      target_table: GLADLY_WORK_SESSIONS",
            "      target_table: GLADLY_CONTACT_TIMESTAMPS",
        ),
        says="GLADLY_CONTACT_TIMESTAMPS",
    ),
    Case("gold-model-bad", append("transform:\n  gold_models: [../x]\n")),
    Case("gold-model-unknown", append("transform:\n  gold_models: [nope]\n"), args=("plan", PIPE)),
    Case("tags-not-list", sub("  domain: demo", "  domain: demo\n  tags: 5")),
    Case("description-control", sub("  description: Gladly", '  description: "a\\0b"')),
]

CLI_CASES = [
    Case("date-empty", args=("run", PIPE, "--date", ""), says="--date"),
    Case("date-blank", args=("run", PIPE, "--date", "  "), says="--date"),
    Case("date-words", args=("run", PIPE, "--date", "yesterday"), says="--date"),
    Case("date-month-13", args=("run", PIPE, "--date", "2026-13-01"), says="--date"),
    Case("date-feb-30", args=("plan", PIPE, "--date", "2026-02-30"), says="--date"),
    Case("date-year-1", args=("run", PIPE, "--date", "0001-01-01"), says="outside"),
    Case("date-year-9999", args=("plan", PIPE, "--date", "9999-12-31"), says="outside"),
    Case("date-instant-year-1", args=("plan", PIPE, "--date", "0001-01-01T00:00"), says="outside"),
    Case("date-bad-offset", args=("plan", PIPE, "--date", "2026-11-03T10:00+25:00")),
    Case("date-nul", args=("plan", PIPE, "--date", "2026-11-03\0"), says="--date"),
    Case("pipeline-unknown", args=("plan", "demo/nope", "--date", "2026-11-03")),
    Case("pipeline-traversal", args=("plan", "../../etc/passwd", "--date", "2026-11-03")),
    Case("pipeline-empty", args=("plan", "", "--date", "2026-11-03")),
    Case("source-unknown", args=("run", PIPE, "--date", "2026-11-03", "--source", "x")),
    Case("target-unknown", args=("run", PIPE, "--date", "2026-11-03", "--target", "nope")),
    Case("format-unknown", args=("plan", PIPE, "--format", "xml")),
    Case("option-unknown", args=("plan", PIPE, "--dates", "2026-11-03")),
    Case("backfill-no-end", args=("backfill", PIPE, "--start", "2026-11-03")),
    Case(
        "backfill-reversed", args=("backfill", PIPE, "--start", "2026-11-05", "--end", "2026-11-03")
    ),
    Case("backfill-bad-start", args=("backfill", PIPE, "--start", "x", "--end", "2026-11-03")),
    Case(
        "backfill-year-1", args=("backfill", PIPE, "--start", "0001-01-01", "--end", "0001-01-02")
    ),
    Case(
        "backfill-workers-0",
        args=("backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-04", "--workers", "0"),
    ),
    Case("status-unknown-pipeline", args=("status", "demo/nope")),
    Case("status-bad-target", args=("status", PIPE, "--target", "nope")),
    Case("extract-bad-date", args=("extract", PIPE, "--date", ""), says="--date"),
    Case("validate-missing-file", args=("validate", "nope.yaml"), says="not found"),
    Case("validate-directory-empty", args=("validate", "sql"), says="no pipeline files"),
]

TARGETS_CASES = [
    Case(
        "targets-yaml-syntax",
        args=("plan", PIPE, "--target", "prod"),
        files={"targets.yaml": "prod: [\n"},
        says="targets.yaml",
    ),
    Case(
        "targets-unknown-type",
        args=("plan", PIPE, "--target", "prod"),
        files={"targets.yaml": "prod:\n  type: bigquery\n"},
        says="targets.yaml",
    ),
    Case(
        "targets-secret-literal",
        args=("plan", PIPE, "--target", "prod"),
        files={
            "targets.yaml": (
                "prod:\n  type: snowflake\n  account: acme\n  user: u\n"
                "  password: hunter2\n  warehouse: W\n  role: R\n"
            )
        },
        says="targets.yaml",
    ),
    Case(
        "targets-alias-bomb",
        args=("plan", PIPE, "--target", "prod"),
        files={"targets.yaml": alias_bomb()},
        says="targets.yaml",
    ),
    Case(
        "targets-not-mapping",
        args=("plan", PIPE, "--target", "prod"),
        files={"targets.yaml": "- prod\n"},
        says="targets.yaml",
    ),
]

CASES = YAML_CASES + SCHEMA_CASES + CLI_CASES + TARGETS_CASES


def test_the_suite_is_large() -> None:
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "pipelines" / "demo", root / "pipelines" / "demo")
    shutil.copytree(REPO / "sql", root / "sql")
    monkeypatch.chdir(root)
    for name in ("XOELT_TARGET", "XOELT_TARGETS", "XOELT_PIPELINES", "XOELT_SQL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XOELT_HOME", str(tmp_path / "home"))
    return root


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(case: Case, project: Path) -> None:
    ok = False
    try:
        pipeline = project / "pipelines" / "demo" / "gladly_demo.yaml"
        if case.yaml is not None:
            pipeline.write_text(case.yaml(DEMO), encoding="utf-8")
        for name, content in case.files.items():
            path = project / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        before = _files(project)
        home = project.parent / "home"

        result = CliRunner().invoke(cli, list(case.args))

        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert result.exit_code == case.exit, result.output + result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert re.match(r"^(error|usage|Usage|Error)", lines[0], re.IGNORECASE), lines[0]
        if case.says:
            assert re.search(case.says, lines[0]), lines[0]
        assert _files(project) == before
        assert not home.exists() or not _files(home)
        ok = True
    finally:
        record("bad_input", case.id, ok)
