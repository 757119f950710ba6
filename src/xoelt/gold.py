"""Gold models: one SELECT per ``sql/gold/<domain>/<name>.sql``, run in dependency order.

Dependencies are read from the SQL itself with sqlglot: a model depends on every other gold
model whose name appears as a table in its FROM/JOIN clauses (unqualified, ``GOLD.<name>``,
or ``<own database>.GOLD.<name>``). A three-part name in another database
(``CORE_DB.GOLD.DIM_AGENTS``) is a cross-database read (:attr:`GoldModel.reads`): another
pipeline builds it, so the run checks it exists before materialising (and the local
warehouse attaches that database's file read-only). A model's data tests and key are in an
optional YAML sidecar beside it, ``<name>.yml`` (:class:`GoldSidecar`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from xoelt.config.datatests import DataTest, GoldSidecar
from xoelt.config.types import IDENTIFIER, NAME
from xoelt.config.yamlpos import load_yaml_with_lines
from xoelt.errors import ConfigError
from xoelt.pipelines import PipelineInvalid, validation_problems
from xoelt.warehouse.base import TableRef

PREFIXES = ("fct_", "dim_", "agg_", "rpt_")


@dataclass(frozen=True)
class GoldModel:
    name: str
    path: str
    table: TableRef
    depends_on: tuple[str, ...]
    select: str
    key: tuple[str, ...] = ()  # from the sidecar: what a failing row is shown by
    tests: tuple[DataTest, ...] = ()
    reads: tuple[TableRef, ...] = ()  # tables of other databases it reads (their pipelines')

    @property
    def sql(self) -> str:
        return f"CREATE OR REPLACE TABLE {self.table.sql} AS\n{self.select}"


def load_models(
    domain: str, database: str, schema: str, only: list[str] | None, root: Path
) -> list[GoldModel]:
    """The domain's gold models under ``root/gold/<domain>`` (or ``only`` those, plus what
    they depend on), in dependency order."""
    folder = root / "gold" / domain
    files = sorted(folder.glob("*.sql")) if folder.is_dir() else []
    texts: dict[str, tuple[Path, str]] = {}
    for path in files:
        name = path.stem.lower()
        if not NAME.match(name) or not name.startswith(PREFIXES):
            raise ConfigError(f"gold model names start with {', '.join(PREFIXES)}", file=str(path))
        if not IDENTIFIER.match(name):
            raise ConfigError(
                "gold model names are table names: letters, digits and _", file=str(path)
            )
        texts[name] = (path, path.read_text(encoding="utf-8").strip().rstrip(";").strip())
    deps: dict[str, tuple[str, ...]] = {}
    reads: dict[str, tuple[TableRef, ...]] = {}
    cache = _DepsCache()
    for name, (path, text) in texts.items():
        parsed = cache.get(text)
        if parsed is None:
            parsed = parse_model(text, path)
            cache.put(text, parsed)
        refs, length = parsed
        texts[name] = (path, text[:length])  # without a trailing `;` and comments after it
        internal, external = _split_refs(refs, database, schema)
        deps[name] = tuple(sorted(t for t in internal if t in texts and t != name))
        reads[name] = external
    cache.save()
    wanted = set(texts)
    if only is not None:
        unknown = [m for m in only if m.lower() not in texts]
        if unknown:
            raise ConfigError(
                f"gold model(s) {', '.join(unknown)} not found in {folder}/ (have: {', '.join(sorted(texts)) or 'none'})"
            )
        wanted, frontier = set(), [m.lower() for m in only]
        while frontier:
            m = frontier.pop()
            if m not in wanted:
                wanted.add(m)
                frontier.extend(deps[m])
    try:
        order = list(TopologicalSorter({m: deps[m] for m in sorted(wanted)}).static_order())
    except CycleError as exc:
        raise ConfigError(
            f"gold models depend on each other in a cycle: {' -> '.join(exc.args[1])}"
        ) from None
    out = []
    for m in order:
        sidecar = load_sidecar(texts[m][0])
        table = TableRef(database, schema, m.upper())
        out.append(
            GoldModel(
                m,
                str(texts[m][0]),
                table,
                deps[m],
                texts[m][1],
                tuple(sidecar.key),
                tuple(sidecar.tests),
                reads[m],
            )
        )
    return out


def _split_refs(
    refs: list[list[str]], database: str, schema: str
) -> tuple[set[str], tuple[TableRef, ...]]:
    """(lower-case names that may be this database's gold models, tables of other databases).

    A name qualified by another schema of this database (``SILVER.X``) is no gold model; one
    qualified by another database is read from there, whatever its schema.
    """
    internal: set[str] = set()
    external: dict[str, TableRef] = {}
    for catalog, db, name in refs:
        if catalog and catalog.upper() != database.upper():
            ref = TableRef(catalog, db or "PUBLIC", name)
            external[str(ref)] = ref
        elif not db or db.upper() == schema.upper():
            internal.add(name.lower())
    return internal, tuple(external[k] for k in sorted(external))


def load_sidecar(sql_path: Path) -> GoldSidecar:
    """The model's ``<name>.yml`` (or ``.yaml``) beside its ``.sql``; none is no tests."""
    for suffix in (".yml", ".yaml"):
        path = sql_path.with_suffix(suffix)
        if path.is_file():
            break
    else:
        return GoldSidecar()
    data, lines = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise ConfigError("a gold sidecar is a mapping (key:, tests:)", file=str(path), line=1)
    try:
        return GoldSidecar.model_validate(data)
    except ValidationError as exc:
        raise PipelineInvalid(validation_problems(exc, GoldSidecar, lines, str(path))) from None


def parse_model(text: str, path: Path) -> tuple[list[list[str]], int]:
    """(the tables a single SELECT reads as ``[catalog, schema, name]``, parts it leaves out
    empty, CTE names excluded; the length of the SELECT's text, so a trailing ``;`` and the
    comments after it can be cut off). Unquoted parts are upper-cased, as Snowflake resolves
    them; quoted parts keep their case."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [
            s
            for s in sqlglot.parse(text, read="snowflake")
            if s is not None and not isinstance(s, exp.Semicolon)
        ]
        tokens = sqlglot.Dialect.get_or_raise("snowflake").tokenize(text)
    except sqlglot.errors.SqlglotError as exc:
        errors = getattr(exc, "errors", None)
        line = errors[0].get("line") if errors else None
        raise ConfigError(
            f"SQL does not parse: {str(exc).splitlines()[0]}", file=str(path), line=line
        ) from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ConfigError("a gold model is exactly one SELECT statement", file=str(path))
    body = [t for t in tokens if t.token_type is not sqlglot.TokenType.SEMICOLON]
    ctes = {c.alias_or_name.lower() for c in statements[0].find_all(exp.CTE)}
    refs = {
        tuple(_part(table.args.get(k)) for k in ("catalog", "db", "this"))
        for table in statements[0].find_all(exp.Table)
        if not (table.name.lower() in ctes and not table.db)
    }
    return [list(r) for r in sorted(refs)], body[-1].end + 1


def _part(node: Any) -> str:
    """One part of a table name as Snowflake resolves it (unquoted: upper case)."""
    from sqlglot import exp

    if not isinstance(node, exp.Identifier):
        return "" if node is None else str(node.name).upper()
    return node.this if node.quoted else node.this.upper()


class _DepsCache:
    """Parsed table references keyed by the SQL's hash, in ``$XDG_CACHE_HOME/xoelt``.

    Importing and running sqlglot costs ~250 ms; ``plan`` must stay well under a second, so
    an unchanged model is not parsed again. Like ``__pycache__`` it is derived data outside
    the run's state (``XOELT_HOME``); a missing or unwritable cache only costs time.
    """

    def __init__(self) -> None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        self.path = Path(base) / "xoelt" / "gold-deps.json"
        self.dirty = False
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, text: str) -> tuple[list[list[str]], int] | None:
        entry = self.data.get(self._key(text))
        if not isinstance(entry, dict) or "refs" not in entry:  # absent, or an older xoelt's
            return None
        return [list(r) for r in entry["refs"]], int(entry["length"])

    def put(self, text: str, parsed: tuple[list[list[str]], int]) -> None:
        refs, length = parsed
        # "tables" is what xoelt before cross-database reads wrote and reads (one cache
        # file serves every installed version)
        tables = sorted({name.lower() for _, _, name in refs})
        self.data[self._key(text)] = {"refs": refs, "tables": tables, "length": length}
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data, sort_keys=True))
            os.replace(tmp, self.path)
