"""RunPlan: everything a run will do, as data. ``plan`` prints it; ``run`` executes it.

:func:`build_plan` is pure: it reads the pipeline and the SQL files in the repository, and
touches no object store, API or warehouse, and needs no credentials. Parts that depend on
what the run finds (the staged file's header, bronze's columns) are rendered as
placeholders; the stages build the same scripts with the real values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from xoelt.config.models import OutputConfig, Pipeline, SchemaPolicy, SilverConfig
from xoelt.dbt_project import DbtPlan, dbt_plan
from xoelt.errors import InputError
from xoelt.gold import GoldModel, load_models
from xoelt.sources import get_source
from xoelt.sources.parts import part_name
from xoelt.strategies import STRATEGIES, LoadStrategy, SilverColumns, SilverJob
from xoelt.targets import BoundTarget
from xoelt.timewindow import TimeWindow, resolve_window
from xoelt.warehouse.base import BronzeLoad, BronzeRows, FilePart, Script, TableRef

COLUMNS_FROM_HEADER = "STAGED_FILE_HEADER"
DERIVED = "derived"
"""The ``source_type`` a derived source's plan shows (it has no extractor of its own)."""


@dataclass(frozen=True)
class SourcePlan:
    name: str
    source_type: str
    load_strategy: str
    ingest_bucket: str
    ingest_key: str
    stage_bucket: str
    stage_key: str
    bronze_table: TableRef
    silver_table: TableRef
    silver: SilverConfig
    request: dict[str, Any]
    sql: dict[str, list[str]] = field(default_factory=dict)
    # the source's schema policy over globals' (key by key)
    schema_policy: SchemaPolicy = field(default_factory=SchemaPolicy)
    # how extract writes the window's data (format resolved: the source type's default)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(format="csv"))
    # a derived source: the source whose bronze table (``bronze_table``) it reads, filtered
    parent: str | None = None
    where: str | None = None

    @property
    def derived(self) -> bool:
        return self.parent is not None

    @property
    def has_silver(self) -> bool:
        """False for a bronze-only source (``silver: {enabled: false}``)."""
        return self.silver.enabled

    @property
    def ordered_backfill(self) -> bool:
        """Whether a backfill must take this source's windows in order (its strategy's SCD2
        history; a bronze-only source keeps none)."""
        return self.has_silver and self.strategy.ordered_backfill

    @property
    def bronze_rows(self) -> BronzeRows:
        """The bronze rows silver reads: the whole table, or a derived source's filtered rows."""
        return BronzeRows(self.bronze_table, self.where)

    @property
    def strategy(self) -> LoadStrategy:
        return STRATEGIES[self.load_strategy]

    @property
    def ingest_manifest_key(self) -> str:
        return self.ingest_key.rsplit("/", 1)[0] + "/_manifest.json"

    @property
    def stage_manifest_key(self) -> str:
        return self.stage_key.rsplit("/", 1)[0] + "/_manifest.json"

    @property
    def format(self) -> str:
        return self.output.format or "csv"

    def ingest_part_key(self, index: int) -> str:
        """The ingest key of part ``index`` (``ingest_key`` is part 0's)."""
        if index == 0:
            return self.ingest_key
        return self.ingest_key.rsplit("/", 1)[0] + "/" + part_name(self.name, index, self.format)

    @property
    def ingest_part_prefix(self) -> str:
        """What every part's ingest key starts with (to find a rerun's stale parts)."""
        return self.ingest_key.rsplit("/", 1)[0] + f"/{self.name}.part-"

    @property
    def stage_part_prefix(self) -> str:
        return self.stage_key.rsplit("/", 1)[0] + f"/{self.name}.part-"

    def stage_part_key(self, ingest_key: str) -> str:
        """Where stage copies the ingest part ``ingest_key`` (same file name)."""
        return self.stage_key.rsplit("/", 1)[0] + "/" + ingest_key.rsplit("/", 1)[-1]

    def bronze_load(
        self,
        columns: list[str],
        file_uri: str,
        window: TimeWindow,
        parts: tuple[FilePart, ...] = (),
    ) -> BronzeLoad:
        """What load reads: ``parts`` (key, location, rows), or at plan time only the first
        part's location ``file_uri``."""
        return BronzeLoad(
            table=self.bronze_table,
            columns=columns,
            bucket=self.stage_bucket,
            key=parts[0].key if parts else self.stage_key,
            file_uri=parts[0].file_uri if parts else file_uri,
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            parts=parts,
        )

    def silver_job(self, window: TimeWindow) -> SilverJob:
        return SilverJob(
            self.bronze_rows,
            self.silver_table,
            self.silver,
            window.start.isoformat(),
            window.timezone,
        )

    def silver_script(self, window: TimeWindow, bronze_columns: list[str] | None) -> Script:
        """The strategy's script; ``bronze_columns`` None renders the plan's placeholders."""
        columns = SilverColumns.of(bronze_columns, self.silver)
        return self.strategy.script(self.silver_job(window), columns)

    @property
    def silver_tables(self) -> list[TableRef]:
        """Every table silver writes (e.g. historical keeps snapshots beside the SCD2 table);
        none for a bronze-only source."""
        return self.strategy.tables(self.silver_table) if self.has_silver else []


@dataclass(frozen=True)
class RunPlan:
    pipeline: Pipeline
    target_name: str
    target: BoundTarget
    window: TimeWindow
    sources: list[SourcePlan]
    gold: list[GoldModel] = field(default_factory=list)
    run_at: date | datetime | None = None  # the run date or instant the window came from
    dbt: DbtPlan | None = None  # transform engine dbt (then ``gold`` is empty)

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def database(self) -> str:
        return self.pipeline.globals.snowflake.database

    @property
    def databases(self) -> list[str]:
        """Every database the run writes: the pipeline's and each bronze table's."""
        return sorted({self.database, *(sp.bronze_table.database for sp in self.sources)})

    @property
    def read_databases(self) -> list[str]:
        """The other databases gold reads (another pipeline's silver or gold), or a data
        test's ``relationships`` names (``to: CORE_DB.GOLD.DIM_AGENTS``)."""
        tests = [*(t for g in self.gold for t in g.tests),
                 *(t for sp in self.sources for t in sp.silver.tests)]  # fmt: skip
        named = {
            to.split(".")[0]
            for t in tests
            if (to := getattr(t, "to", None)) and to.count(".") == 2  # relationships only
        }
        reads = {t.database for g in self.gold for t in g.reads}
        return sorted((reads | named) - set(self.databases))

    def select(self, source: str | None) -> list[SourcePlan]:
        """The source plans to run (in run order, see :func:`run_order`): all, or the one
        named (error lists valid names)."""
        if source is None:
            return self.sources
        for sp in self.sources:
            if sp.name == source:
                return [sp]
        raise InputError(
            f"pipeline {self.name} has no source {source!r}; valid: {', '.join(s.name for s in self.sources)}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``xoelt plan --format json``."""
        out: dict[str, Any] = {
            "pipeline": self.name,
            "file": str(self.pipeline.path) if self.pipeline.path else None,
            "target": {"name": self.target_name, "type": self.target.type},
            "schedule": self.pipeline.dag.schedule,
            "window": self.window.as_dict(),
            "sources": [_source_dict(sp) for sp in self.sources],
            "gold": [
                {
                    "name": g.name,
                    "table": str(g.table),
                    "depends_on": list(g.depends_on),
                    "reads": [str(t) for t in g.reads],
                    "sql": g.sql,
                }
                for g in self.gold
            ],
        }
        if self.dbt is not None:  # xoelt's own gold (the default) adds nothing
            out["transform"] = self.dbt.as_dict()
        return out


def _source_dict(sp: SourcePlan) -> dict[str, Any]:
    """One source in ``plan --format json``: a derived one names its parent and filter and
    has no request, keys or output (it extracts nothing)."""
    out: dict[str, Any] = {
        "name": sp.name,
        "source_type": sp.source_type,
        "load_strategy": sp.load_strategy,
    }
    if sp.derived:
        out |= {"from_source": sp.parent, "where": sp.where}
    else:
        out |= {
            "request": sp.request,
            "ingest_key": f"{sp.ingest_bucket}/{sp.ingest_key}",
            "stage_key": f"{sp.stage_bucket}/{sp.stage_key}",
            "output": {"format": sp.format, "part_size": sp.output.part_size},
        }
    out |= {
        "bronze_table": str(sp.bronze_table),
        "silver_table": str(sp.silver_table) if sp.has_silver else None,
        "sql": sp.sql,
    }
    return out


def run_order(pipeline: Pipeline) -> list[str]:
    """The sources in the order a run takes them: each real source in file order, followed
    at once by the sources derived from it (in file order), so a derived source's transform
    runs after its parent's load and transform, on the bronze the parent just loaded."""
    order = []
    for name, src in pipeline.sources.items():
        if not src.derived:
            order.append(name)
            order += [n for n, s in pipeline.sources.items() if s.from_source == name]
    return order


def build_plan(
    pipeline: Pipeline,
    target_name: str,
    target: BoundTarget,
    run_at: date | datetime,
    sql_root: Path,
    gold: list[GoldModel] | None = None,
) -> RunPlan:
    """Turn (pipeline, target, run date or instant) into a RunPlan. Pure: no I/O but repo files.

    ``gold``: the pipeline's gold models if already loaded (:func:`pipeline_gold`; they do not
    depend on the window), so many windows' plans read and parse them once.
    """
    dag = pipeline.dag
    window = resolve_window(dag.time_window, run_at, dag.schedule)
    sf = pipeline.globals.snowflake
    storage = pipeline.globals.storage
    base = f"{dag.domain}/{dag.pipeline_name}"
    plans = []
    bronzes: dict[str, TableRef] = {}
    for name in run_order(pipeline):
        src = pipeline.sources[name]
        silver = TableRef(sf.database, sf.silver_schema, src.silver.table or name.upper())
        if src.from_source is not None:  # run_order put its parent first
            derived = SourcePlan(
                name=name,
                source_type=DERIVED,
                load_strategy=src.load_strategy,
                ingest_bucket=storage.ingest_bucket,
                ingest_key="",
                stage_bucket=storage.stage_bucket,
                stage_key="",
                bronze_table=bronzes[src.from_source],
                silver_table=silver,
                silver=src.silver,
                schema_policy=src.schema_policy.under(pipeline.globals.schema_policy),
                request={},
                parent=src.from_source,
                where=src.where,
            )
            sql = {"transform": derived.silver_script(window, None).statements()}
            plans.append(dataclasses.replace(derived, sql=sql))
            continue
        target_table = src.target
        bronze = TableRef(
            target_table.database or sf.database,
            target_table.schema_ or sf.schema_,
            target_table.target_table,
        )
        bronzes[name] = bronze
        cls = get_source(src.type_name)
        output = src.output.model_copy(update={"format": src.output.format or cls.output_format})
        first = part_name(name, 0, output.format or "csv")
        stage_key = f"stage/{base}/{name}/{src.load_strategy}/{window.tag}/{first}"
        draft = SourcePlan(
            name=name,
            source_type=src.type_name,
            load_strategy=src.load_strategy,
            ingest_bucket=storage.ingest_bucket,
            ingest_key=f"ingest/{base}/{name}/{window.tag}/{first}",
            stage_bucket=storage.stage_bucket,
            stage_key=stage_key,
            bronze_table=bronze,
            silver_table=silver,
            silver=src.silver,
            schema_policy=src.schema_policy.under(pipeline.globals.schema_policy),
            request=cls.describe(pipeline.extractor_config(name), window),
            output=output,
        )
        load = draft.bronze_load(
            [COLUMNS_FROM_HEADER], target.file_location(storage.stage_bucket, stage_key), window
        )
        sql = {"load": target.warehouse.bronze_script(load, None, None).statements()}
        if draft.has_silver:
            sql["transform"] = draft.silver_script(window, None).statements()
        plans.append(dataclasses.replace(draft, sql=sql))
    if gold is None:
        gold = pipeline_gold(pipeline, sql_root)
    dbt = dbt_plan(pipeline, sql_root)
    return RunPlan(pipeline, target_name, target, window, plans, gold, run_at, dbt)


def pipeline_gold(pipeline: Pipeline, sql_root: Path) -> list[GoldModel]:
    """The gold models the pipeline materialises, in dependency order (any window's); none
    when its transform engine is dbt."""
    if pipeline.transform.engine == "dbt":
        return []
    sf = pipeline.globals.snowflake
    only = pipeline.transform.gold_models
    return load_models(pipeline.dag.domain, sf.database, sf.gold_schema, only, sql_root)
