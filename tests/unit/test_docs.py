"""Docs that cannot drift: every command and every source type is in the README."""

from __future__ import annotations

import re
from pathlib import Path

from xoelt.cli import cli
from xoelt.sources import source_types

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_command_is_documented() -> None:
    # "xoelt run", or one of "xoelt extract|stage|load|transform"
    shown = {m for group in re.findall(r"xoelt ([a-z|-]+)", README) for m in group.split("|")}
    assert sorted(set(cli.commands) - shown) == []


def test_every_source_type_is_documented() -> None:
    assert [s for s in source_types() if f"`{s}`" not in README] == []
