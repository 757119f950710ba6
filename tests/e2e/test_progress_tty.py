"""The extraction progress bar through the CLI: on a pseudo-terminal, and off one.

stderr on a ``pty`` is a TTY as at a user's shell: the bar shows with console logs and is
absent with ``--log-format json``, whose stderr stays JSON lines only.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess

from tests.e2e.conftest import XOELT, Project

PIPE = "demo/gladly_demo"


def _on_a_tty(project: Project, *args: str) -> tuple[int, str, str]:
    """Run xoelt with stderr on a pseudo-terminal; return (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
    env.update(XOELT_HOME=str(project.home), COLUMNS="160", TERM="xterm")
    proc = subprocess.Popen(
        [*XOELT, *args], cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read() if proc.stdout else b""
    code = proc.wait(timeout=60)
    os.close(master)
    return code, out.decode(), seen.decode(errors="replace")


def test_bar_on_a_tty_and_nothing_in_json_mode(project: Project) -> None:
    project.publish_demo_files()
    args = ("extract", PIPE, "--date", "2026-11-03")
    code, out, tty = _on_a_tty(project, *args)
    assert code == 0, tty
    assert "extract contact_timestamps" in tty and "135 rows" in tty and "0 pages" in tty
    assert "extract agents" in tty and "5 rows" in tty
    assert "━" in tty  # the bar
    assert "rows" not in out and "contact_timestamps" in out  # the report on stdout, no bar

    code, out, tty = _on_a_tty(project, "--log-format", "json", *args, "--format", "json")
    assert code == 0, tty
    assert "rows" not in tty.replace('"rows"', "")  # only the JSON log lines' own keys
    lines = [ln for ln in tty.replace("\r", "").splitlines() if ln.strip()]
    assert lines and all(json.loads(ln)["event"] for ln in lines)  # JSON lines, nothing else
    report = json.loads(out)
    assert {s["name"]: s["rows"]["extract"] for s in report["sources"]} == {
        "contact_timestamps": 135,
        "work_sessions": 45,
        "agents": 5,
    }


def test_no_bar_off_a_tty(project: Project) -> None:
    project.publish_demo_files()
    proc = project.xoelt("extract", PIPE, "--date", "2026-11-03", check=True)
    assert "extract contact_timestamps" not in proc.stderr + proc.stdout
    assert all(json.loads(ln)["event"] for ln in proc.stderr.splitlines())  # JSON lines only
