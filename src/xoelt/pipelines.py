"""Find and load pipeline files; turn validation errors into ``file:line key: message``.

This sits above the adapters: a pipeline is checked against the source registry (each
``extractor:`` block by its source type's model) and the load strategies, which the config
models only see as a :class:`~xoelt.config.models.Vocabulary`.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from xoelt.config.datatests import TEST_KINDS
from xoelt.config.env import environment
from xoelt.config.models import Pipeline, PipelineConfig, Vocabulary
from xoelt.config.yamlpos import Loc, line_for, load_yaml_with_lines
from xoelt.errors import ConfigError, InputError
from xoelt.sources import get_source, source_types
from xoelt.strategies import STRATEGIES


class PipelineInvalid(ConfigError):
    """One or more problems in a pipeline file; ``problems`` lists every one, in file order."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.message}{more}")
        self.message = f"{first.message}{more}"
        self.file, self.line, self.key = first.file, first.line, first.key


def discover(base: Path) -> list[Path]:
    """Every pipeline YAML under ``base`` in a stable order (a gold model's data-test
    sidecar, ``<model>.yml`` beside ``<model>.sql``, is no pipeline)."""
    if not base.is_dir():
        return []
    return sorted(
        p
        for p in base.rglob("*.y*ml")
        if p.suffix in (".yaml", ".yml") and not p.with_suffix(".sql").is_file()
    )


def resolve(ref: str, base: Path) -> Path:
    """A pipeline by path, ``domain/name`` or bare ``name`` (when unique) under ``base``."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise InputError(f"{ref}: file not found")
        return candidate
    for suffix in (".yaml", ".yml"):
        direct = base / f"{ref}{suffix}"
        if direct.is_file():
            return direct
    if "/" not in ref:
        matches = [p for p in discover(base) if p.stem == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(str(p.relative_to(base).with_suffix("")) for p in matches)
            raise InputError(f"pipeline {ref!r} is ambiguous: {names}")
    known = [str(p.relative_to(base).with_suffix("")) for p in discover(base)]
    hint = difflib.get_close_matches(ref, known + [Path(k).name for k in known], n=1)
    suffix = f"; did you mean {hint[0]!r}?" if hint else ""
    raise InputError(f"pipeline {ref!r} not found under {base}/{suffix}")


def vocabulary() -> Vocabulary:
    """The source types and load strategies pipelines may name."""
    return Vocabulary(
        source_types=source_types(),
        load_strategies={name: s.requires_primary_key for name, s in STRATEGIES.items()},
    )


def load_pipeline(path: Path, env: Mapping[str, str] | None = None) -> Pipeline:
    """Load and validate one pipeline file, including each source's extractor block."""
    env = environment() if env is None else env
    data, lines = load_yaml_with_lines(path)
    display = str(path)
    if not isinstance(data, dict):
        raise ConfigError(
            "a pipeline file must be a mapping (dag:, globals:, sources:)", file=display, line=1
        )
    context = {"env": env, "vocabulary": vocabulary()}
    try:
        config = PipelineConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise PipelineInvalid(_problems(exc, (), PipelineConfig, lines, display)) from None
    problems = [*_parents(config, lines, display), *_shared_tables(config, lines, display)]
    extractors: dict[str, BaseModel] = {}
    for name, source in config.sources.items():
        if source.derived:
            continue
        model = get_source(source.type_name).Config
        prefix: Loc = ("sources", name, "extractor")
        try:
            extractors[name] = model.model_validate(
                source.extractor, context={**context, "time_window": config.dag.time_window}
            )
        except ValidationError as exc:
            problems.extend(_problems(exc, prefix, model, lines, display))
    if problems:
        raise PipelineInvalid(problems)
    return Pipeline(config, path, extractors)


def _parents(config: PipelineConfig, lines: dict[Loc, int], display: str) -> list[ConfigError]:
    """A derived source's ``from_source`` names a real (not derived) source of the pipeline."""
    problems = []
    for name, src in config.sources.items():
        parent = src.from_source
        if parent is None:
            continue
        loc: Loc = ("sources", name, "from_source")
        if parent == name:
            why = "a source cannot derive from itself"
        elif parent not in config.sources:
            real = [n for n, s in config.sources.items() if not s.derived and n != name]
            hint = difflib.get_close_matches(parent, real, n=1)
            why = f"no source {parent!r} in this pipeline" + (
                f"; did you mean {hint[0]!r}?" if hint else f"; valid: {', '.join(real)}"
            )
        elif config.sources[parent].derived:
            why = (
                f"source {parent!r} is itself derived (from {config.sources[parent].from_source}); "
                "derive from the source that loads the bronze table"
            )
        else:
            continue
        problems.append(
            ConfigError(why, file=display, line=line_for(lines, loc), key=".".join(loc))
        )
    return problems


def _shared_tables(
    config: PipelineConfig, lines: dict[Loc, int], display: str
) -> list[ConfigError]:
    """Two sources writing one bronze or silver table would overwrite each other's rows (a
    derived source writes no bronze; one with silver disabled, no silver)."""
    globals_ = config.globals.snowflake
    owners: dict[tuple[str, str, str], str] = {}
    problems = []
    for name, src in config.sources.items():
        written: list[tuple[str, tuple[str, str, str], Loc]] = []
        if src.snowflake is not None:
            bronze = (
                src.snowflake.database or globals_.database,
                src.snowflake.schema_ or globals_.schema_,
                src.snowflake.target_table,
            )
            written.append(("bronze", bronze, ("sources", name, "snowflake", "target_table")))
        if src.silver.enabled:
            silver = (globals_.database, globals_.silver_schema, src.silver.table or name.upper())
            written.append(("silver", silver, ("sources", name, "silver", "table")))
        for layer, table, loc in written:
            other = owners.setdefault(table, name)
            if other != name:
                problems.append(
                    ConfigError(
                        f"{layer} table {'.'.join(table)} is also source {other}'s; "
                        "give each source its own table",
                        file=display,
                        line=line_for(lines, loc),
                        key=".".join(str(p) for p in loc),
                    )
                )
    return problems


@dataclass(frozen=True)
class _Problem:
    loc: Loc
    message: str
    suggestion: str | None = None  # the valid key a typo'd one most likely meant
    missing: bool = False


def _problems(
    exc: ValidationError, prefix: Loc, model: type[BaseModel], lines: dict[Loc, int], display: str
) -> list[ConfigError]:
    found: list[_Problem] = []
    for err in exc.errors(include_url=False):
        raw: Loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        loc = _without_tags(raw)
        full = (*prefix, *loc)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, raw[:-1])
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            message = f"unknown key {loc[-1]!r}" + (
                f"; did you mean {hint[0]!r}?" if hint else f"; valid keys: {', '.join(allowed)}"
            )
            found.append(_Problem(full, message, hint[0] if hint else None))
        elif err["type"] == "missing":
            found.append(_Problem(full, "required key is missing", missing=True))
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            found.append(_Problem((*full, "kind"), _kind_problem(err)))
        else:
            message = err["msg"].removeprefix("Value error, ")
            if err["type"].startswith("literal") and "input" in err:
                message = f"{err['input']!r}: {message}"
            found.append(_Problem(full, message))
    # A typo'd key also makes the real key "missing": report only the typo, with its hint.
    meant = {(*p.loc[:-1], p.suggestion) for p in found if p.suggestion}
    kept = [p for p in found if not (p.missing and p.loc in meant)]
    out = [
        ConfigError(
            p.message,
            file=display,
            line=line_for(lines, p.loc),
            key=".".join(str(part) for part in p.loc) or "(top level)",
        )
        for p in kept
    ]
    out.sort(key=lambda e: e.line or 0)
    return out


def validation_problems(
    exc: ValidationError, model: type[BaseModel], lines: dict[Loc, int], display: str
) -> list[ConfigError]:
    """``exc`` as one ConfigError per problem (``file:line key: message``), in file order."""
    return _problems(exc, (), model, lines, display)


def _without_tags(loc: Loc) -> Loc:
    """pydantic puts a tagged union's tag in the path (``tests.0.unique.columns``); the
    user wrote no such key."""
    return tuple(
        p for i, p in enumerate(loc) if not (p in TEST_KINDS and i and isinstance(loc[i - 1], int))
    )


def _kind_problem(err: Any) -> str:
    """A data test whose ``kind`` is missing or unknown, said with the valid kinds."""
    kinds = ", ".join(TEST_KINDS)
    tag = (err.get("ctx") or {}).get("tag")
    if err["type"] == "union_tag_not_found" or tag is None:
        return f"a data test needs kind: one of {kinds}"
    hint = difflib.get_close_matches(str(tag), TEST_KINDS, n=1)
    if hint:
        return f"{tag!r} is not a data test kind; did you mean {hint[0]!r}?"
    return f"{tag!r} is not a data test kind; valid: {kinds}"


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _step(current: Any, part: str | int) -> Any:
    current = _unwrap(current)
    origin = typing.get_origin(current)
    if origin in (typing.Union, types.UnionType):  # a tagged union: the member ``part`` names
        for member in typing.get_args(current):
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and part in typing.get_args(kind.annotation):
                return member
        return None
    if origin in (dict, list, Mapping):
        return _unwrap(typing.get_args(current)[-1])
    if isinstance(current, type) and issubclass(current, BaseModel):
        for name, field in current.model_fields.items():
            if part in (name, field.alias):
                return _unwrap(field.annotation)
    return None
