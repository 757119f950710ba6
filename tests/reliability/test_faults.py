"""Faults between stages: the object stage recorded is altered or removed before load.

The load verifies the staged object is the one stage recorded (size and version — S3's
ETag, a local file's inode and mtime — and its header) and refuses anything else, so a
swapped pair of columns can never load under each other's names.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Project
from tests.reliability.report import record

PIPE = "demo/gladly_demo"
DATE = "2026-11-04"
WINDOW_DAY = "2026-11-03"
SOURCE = "contact_timestamps"


def staged(project: Project) -> Path:
    folder = project.home / "objects" / "xoelt-stage" / "stage" / "demo" / "gladly_demo"
    return folder / SOURCE / "full_refresh" / WINDOW_DAY / f"{SOURCE}.part-00000.csv"


def swap_columns(text: str, a: str, b: str) -> str:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    i, j = rows[0].index(a), rows[0].index(b)
    for row in rows:
        row[i], row[j] = row[j], row[i]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def in_place(path: Path, text: str) -> None:
    with path.open("r+", encoding="utf-8", newline="") as fh:  # same inode, new mtime
        fh.seek(0)
        fh.write(text)
        fh.truncate()


def replaced(path: Path, text: str) -> None:
    tmp = path.with_name("tmp-swap")
    tmp.write_text(text, encoding="utf-8", newline="")
    stat = path.stat()
    os.replace(tmp, path)  # a new inode with the old mtime: only the version shows it
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def header_only_swap(path: Path, text: str) -> None:
    head, _, rest = text.partition("\n")
    names = head.split(",")
    names[2], names[3] = names[3], names[2]
    in_place(path, ",".join(names) + "\n" + rest)


@pytest.mark.parametrize("alter", [in_place, replaced, header_only_swap])
def test_a_staged_file_altered_after_stage_is_refused(project: Project, alter: object) -> None:
    ok = False
    try:
        project.publish_demo_files()
        project.xoelt("extract", PIPE, "--date", DATE, "--source", SOURCE, check=True)
        project.xoelt("stage", PIPE, "--date", DATE, "--source", SOURCE, check=True)
        path = staged(project)
        text = path.read_text(encoding="utf-8")
        swapped = swap_columns(text, "Contact ID", "Conversation ID")
        assert len(swapped) == len(text)  # same size: a size check alone would not see it
        assert callable(alter)
        alter(path, swapped if alter is not header_only_swap else text)

        proc = project.xoelt("load", PIPE, "--date", DATE, "--source", SOURCE)

        assert proc.returncode == 1, proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: load failed source={SOURCE} window=[{WINDOW_DAY}"), line
        assert "refusing to load it" in line and "run `xoelt stage`" in line, line
        status = project.xoelt("status", PIPE, "--format", "json", check=True).stdout
        assert '"rows": null' in status or '"rows": 0' in status  # bronze never got the file

        # Locally the staged file is a hard link of the ingest file: an edit in place altered
        # both, so recovery is a whole rerun of the window.
        project.xoelt("run", PIPE, "--date", DATE, check=True)
        ok = True
    finally:
        record("fault", f"staged file altered: {getattr(alter, '__name__', alter)}", ok)


def test_a_staged_file_deleted_after_stage_is_refused(project: Project) -> None:
    ok = False
    try:
        project.publish_demo_files()
        project.xoelt("extract", PIPE, "--date", DATE, "--source", SOURCE, check=True)
        project.xoelt("stage", PIPE, "--date", DATE, "--source", SOURCE, check=True)
        staged(project).unlink()
        proc = project.xoelt("load", PIPE, "--date", DATE, "--source", SOURCE)
        assert proc.returncode == 1
        assert "staged file" in proc.stderr and "is missing" in proc.stderr, proc.stderr
        ok = True
    finally:
        record("fault", "staged file deleted", ok)


def tables(project: Project) -> object:
    import json

    return json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)[
        "tables"
    ]


def _file_instead_of(path: Path) -> None:
    import shutil

    shutil.move(path, path.with_name(path.name + ".bak"))
    path.write_text("not a directory")


def _restore(path: Path) -> None:
    path.unlink()
    backup = path.with_name(path.name + ".bak")
    backup.rename(path)


def _corrupt(path: Path) -> None:
    backup = path.with_name(path.name + ".bak")
    backup.write_bytes(path.read_bytes())
    path.write_bytes(os.urandom(12_000))


def _uncorrupt(path: Path) -> None:
    path.with_name(path.name + ".bak").replace(path)


ENVIRONMENT_FAULTS = {
    # name: (path under XOELT_HOME, break, repair, what the message says)
    "warehouse-dir-is-a-file": ("warehouse", _file_instead_of, _restore, "cannot create"),
    "warehouse-file-corrupt": (
        "warehouse/DEMO_DB.duckdb",
        _corrupt,
        _uncorrupt,
        "not a valid DuckDB database file",
    ),
    "scratch-dir-is-a-file": ("tmp", lambda p: p.write_text("x"), Path.unlink, "scratch"),
    "store-bucket-is-a-file": ("objects/xoelt-ingest", _file_instead_of, _restore, "ingest"),
}


@pytest.mark.parametrize("fault", sorted(ENVIRONMENT_FAULTS))
def test_a_broken_environment_fails_in_one_line_and_recovers(project: Project, fault: str) -> None:
    ok = False
    try:
        project.publish_demo_files()
        project.xoelt("run", PIPE, "--date", "2026-11-03", check=True)
        before = tables(project)
        relative, breaks, repair, says = ENVIRONMENT_FAULTS[fault]
        path = project.home / relative
        if fault == "scratch-dir-is-a-file" and path.exists():
            import shutil

            shutil.rmtree(path)
        breaks(path)

        proc = project.xoelt("run", PIPE, "--date", DATE)

        assert proc.returncode == 1, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "failed source=" in lines[0] and "window=[" in lines[0], lines[0]
        assert says in lines[0], lines[0]
        repair(path)
        assert tables(project) == before  # nothing half-written
        project.xoelt("run", PIPE, "--date", DATE, check=True)
        ok = True
    finally:
        record("fault", fault, ok)


def test_another_writer_holding_the_warehouse_is_named(project: Project) -> None:
    ok = False
    try:
        import duckdb

        project.publish_demo_files()
        project.xoelt("run", PIPE, "--date", "2026-11-03", check=True)
        with duckdb.connect(str(project.home / "warehouse" / "DEMO_DB.duckdb")):
            proc = project.xoelt("run", PIPE, "--date", DATE)
        assert proc.returncode == 1
        line = proc.stderr.strip().splitlines()[-1]
        assert "failed source=" in line and "window=[" in line and "lock" in line, line
        project.xoelt("run", PIPE, "--date", DATE, check=True)
        ok = True
    finally:
        record("fault", "another writer holds the warehouse", ok)


def _mount_tmpfs(path: Path, megabytes: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.mark.chaos
@pytest.mark.parametrize("spare", [0.3, 1.2, 1.6, 2.2])
def test_a_full_disk_fails_cleanly_and_recovers(tmp_path: Path, spare: float) -> None:
    """XOELT_HOME on a small tmpfs: the run fails in one line where the disk fills (extract,
    load or transform, by the room left), and converges once there is room."""
    from tests.reliability.test_signals import bulk_file, state

    root = tmp_path / "project"
    shutil.copytree(REPO / "pipelines" / "demo", root / "pipelines" / "demo",
                    ignore=shutil.ignore_patterns("data"))  # fmt: skip
    shutil.copytree(REPO / "sql", root / "sql")
    reference = Project(root, tmp_path / "reference")
    reference.publish_demo_files()
    bulk_file(reference, WINDOW_DAY)
    landing = sum(p.stat().st_size for p in (reference.home / "objects").rglob("*") if p.is_file())
    reference.xoelt("run", PIPE, "--date", DATE, check=True)
    clean = state(reference)

    home = tmp_path / "small"
    size = int(landing * (1 + spare) / 2**20) + 2
    if not _mount_tmpfs(home, size):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    ok = False
    try:
        project = Project(root, home)
        project.publish_demo_files()
        bulk_file(project, WINDOW_DAY)
        proc = project.xoelt("run", PIPE, "--date", DATE)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
        full = proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr
        assert proc.returncode in (0, 1), proc.stderr
        if proc.returncode == 1:
            assert full, proc.stderr
            assert "failed source=" in lines[0] and "window=[" in lines[0], lines[0]
        subprocess.run(["mount", "-o", "remount,size=512m", str(home)], check=True)
        project.xoelt("run", PIPE, "--date", DATE, check=True)
        assert state(project) == clean
        ok = True
    finally:
        record("fault", f"full disk, {size} MB for {landing // 2**20} MB landed", ok)
        subprocess.run(["umount", "-l", str(home)], capture_output=True)


def test_a_home_with_a_backslash_and_a_quote_works(tmp_path: Path) -> None:
    """Paths reach DuckDB's own SQL (ATTACH, read_csv) as literals that keep a backslash."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "pipelines" / "demo", root / "pipelines" / "demo",
                    ignore=shutil.ignore_patterns("data"))  # fmt: skip
    shutil.copytree(REPO / "sql", root / "sql")
    ok = False
    try:
        project = Project(root, tmp_path / "ho\\me's")
        project.publish_demo_files()
        project.xoelt("run", PIPE, "--date", DATE, check=True)
        status = project.xoelt("status", PIPE, "--format", "json", check=True).stdout
        assert "ho\\\\\\\\me's" in status or "ho\\\\me's" in status
        ok = True
    finally:
        record("bad_input", "XOELT_HOME with a backslash and a quote", ok)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("empty.csv", b"", "empty file (no header)"),
        ("blank.csv", b"\n\n", "empty file (no header)"),
        ("cut.csv.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "cut.csv.gz"),
    ],
)
def test_a_broken_upload_fails_at_extract_naming_the_file(
    project: Project, name: str, content: bytes, says: str
) -> None:
    ok = False
    try:
        project.publish_demo_files()
        landing = project.home / "objects" / "xoelt-landing" / "gladly" / SOURCE / WINDOW_DAY
        (landing / name).write_bytes(content)
        proc = project.xoelt("run", PIPE, "--date", DATE)
        assert proc.returncode == 1, proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: extract failed source={SOURCE} window=["), line
        assert says in line and name in line, line
        ok = True
    finally:
        record("bad_input", f"upload {name}", ok)


def test_a_field_over_128_kb_loads(project: Project) -> None:
    """Python's csv refuses fields over 128 KB by default; Snowflake takes up to 16 MB."""
    project.publish_demo_files()
    landing = project.home / "objects" / "xoelt-landing" / "gladly" / SOURCE / WINDOW_DAY
    first = next(landing.glob("*.csv"))
    header = first.read_text(encoding="utf-8").splitlines()[0]
    wide = "2026-11-03T13:00:00.000Z,CONTACT_CREATED," + "x" * 300_000 + ",cv,cu,SMS,IN,ib,Sales,,"
    (landing / "wide.csv").write_text(f"{header}\n{wide}\n", encoding="utf-8")
    project.xoelt("run", PIPE, "--date", DATE, check=True)


def test_a_load_shadow_left_by_a_kill_is_dropped_at_the_next_open(project: Project) -> None:
    """A SIGKILL mid-load leaves ``<TABLE>__XO_LOAD`` behind; whoever opens the warehouse
    next (here ``status``) holds the file's write lock, so it drops it; bronze is intact."""
    import duckdb

    ok = False
    try:
        project.publish_demo_files()
        project.xoelt("run", PIPE, "--date", DATE, check=True)
        path = project.home / "warehouse" / "DEMO_DB.duckdb"
        con = duckdb.connect(str(path))
        try:
            con.execute(
                'CREATE TABLE "BRONZE"."GLADLY_CONTACT_TIMESTAMPS__XO_LOAD" AS '
                'SELECT * FROM "BRONZE"."GLADLY_CONTACT_TIMESTAMPS" LIMIT 3'
            )
            before = con.execute('SELECT COUNT(*) FROM "BRONZE"."GLADLY_CONTACT_TIMESTAMPS"')
            bronze_rows = before.fetchone()
        finally:
            con.close()
        project.xoelt("status", PIPE, check=True)
        con = duckdb.connect(str(path), read_only=True)
        try:
            names = {
                r[0]
                for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
            }
            after = con.execute('SELECT COUNT(*) FROM "BRONZE"."GLADLY_CONTACT_TIMESTAMPS"')
            assert after.fetchone() == bronze_rows
        finally:
            con.close()
        assert not [n for n in names if n.endswith("__XO_LOAD")], names
        ok = True
    finally:
        record("fault", "load shadow left by a kill", ok)
