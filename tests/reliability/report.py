"""The chaos report: what the reliability suite injected and how each case ended.

Tests call :func:`record` (a no-op unless ``XOELT_CHAOS_REPORT`` names a file, as
``make chaos`` does); each call appends one JSON line, so xdist workers can share the file.
``python -m tests.reliability.report FILE`` prints the table ``make chaos`` ends with.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

CATEGORIES = {
    "kill": ("kill points", "injected", "recovered"),
    "signal": ("signals (SIGTERM/SIGINT)", "injected", "recovered"),
    "fault": ("store/warehouse faults", "injected", "handled"),
    "concurrency": ("concurrent runs/backfills", "tried", "converged"),
    "bad_input": ("bad inputs", "tried", "handled"),
    "secret": ("secret sweeps", "tried", "no leak"),
}


def record(category: str, case: str, ok: bool, *, rows_lost: int = 0, note: str = "") -> None:
    """Append one outcome (``ok``: recovered / handled / no leak) to the report file."""
    target = os.environ.get("XOELT_CHAOS_REPORT")
    if not target:
        return
    line = json.dumps(
        {"category": category, "case": case, "ok": ok, "rows_lost": rows_lost, "note": note}
    )
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def table(path: Path) -> str:
    """The summary table of a report file."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    failures: list[str] = []
    if path.is_file():
        for raw in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(raw)
            entry = counts[item["category"]]
            entry[0] += 1
            entry[1] += bool(item["ok"])
            entry[2] += int(item["rows_lost"])
            if not item["ok"]:
                failures.append(f"  {item['category']}: {item['case']} {item['note']}".rstrip())
    lines = [f"{'what':<28} {'tried':>7} {'ok':>7}   meaning of ok"]
    total_lost = 0
    for key, (label, tried, ok) in CATEGORIES.items():
        n, good, lost = counts.get(key, [0, 0, 0])
        total_lost += lost
        lines.append(f"{label:<28} {n:>7} {good:>7}   {tried} / {ok}")
    leaks = counts.get("secret", [0, 0, 0])
    lines.append(f"{'secret leaks':<28} {leaks[0] - leaks[1]:>7}")
    lines.append(f"{'rows lost':<28} {total_lost:>7}")
    if failures:
        lines += ["not recovered / not handled:", *failures]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
