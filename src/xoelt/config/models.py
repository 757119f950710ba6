"""Pydantic models of the pipeline YAML (the original DAG factory's format, plus optional keys).

Every model forbids unknown keys so a typo is an error that names the key. The names other
layers define (source types, load strategies) are not imported here: the loader hands them
to validation as a :class:`Vocabulary` in the validation context, so these models sit below
every adapter and strategy.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xoelt.config.alerts import AlertsConfig
from xoelt.config.cron import kubernetes_schedule_problem, kubernetes_zone_problem
from xoelt.config.datatests import DataTest, parse_predicate
from xoelt.config.types import Bucket, Identifier, Name, SourceName, StrictModel

SILVER_TYPE = re.compile(
    r"^(VARCHAR|STRING|TEXT|BOOLEAN|DATE|FLOAT|DOUBLE|INTEGER|BIGINT|NUMBER(\(\d{1,2}(,\s*\d{1,2})?\))?"
    r"|TIMESTAMP_TZ|TIMESTAMP_NTZ|TIMESTAMP_LTZ|VARIANT)$"
)


@dataclass(frozen=True)
class Vocabulary:
    """The names defined above the config layer, given to validation by the loader.

    ``load_strategies`` maps each strategy name to whether it needs ``silver.primary_key``.
    """

    source_types: Collection[str]
    load_strategies: Mapping[str, bool]


def _vocabulary(info: ValidationInfo) -> Vocabulary:
    vocabulary = (info.context or {}).get("vocabulary")
    if not isinstance(vocabulary, Vocabulary):
        raise ValueError("cannot be checked: validate pipelines with xoelt.config.loader")
    return vocabulary


class Duration(StrictModel):
    days: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)
    minutes: int = Field(0, ge=0)

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


class TimeWindowConfig(StrictModel):
    refresh_type: Literal["daily", "intraday_relative", "intraday_absolute"]
    lag: Duration = Duration()
    lookback: Duration | None = None
    timezone: str = "UTC"
    start_time: time | None = None
    end_time: time | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        problem = kubernetes_zone_problem(value)  # the CronJob's timeZone is this zone
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fields_for_type(self) -> TimeWindowConfig:
        if self.refresh_type == "daily":
            if self.lag.hours or self.lag.minutes:
                raise ValueError("a daily window's lag is whole days (lag: {days: N})")
        elif self.refresh_type == "intraday_relative":
            if self.lookback is None or self.lookback.delta <= self.lag.delta:
                raise ValueError("intraday_relative needs a lookback longer than its lag")
        elif self.start_time is None or self.end_time is None:
            raise ValueError("intraday_absolute needs start_time and end_time (HH:MM)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DagConfig(StrictModel):
    domain: Name
    pipeline_name: Name
    pipeline_type: Literal["snowflake_load"] = "snowflake_load"
    schedule: str
    time_window: TimeWindowConfig
    description: str | None = None
    owner: str | None = None
    tags: list[str] = []

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        """A schedule Kubernetes' CronJob parser and croniter both accept (see xoelt.config.cron)."""
        problem = kubernetes_schedule_problem(value)
        if problem:
            raise ValueError(f"{value!r} cannot be scheduled: {problem}")
        return value


class SnowflakeGlobals(StrictModel):
    database: Identifier
    schema_: Identifier = Field("BRONZE", alias="schema")
    silver_schema: Identifier = "SILVER"
    gold_schema: Identifier = "GOLD"


class StorageGlobals(StrictModel):
    ingest_bucket: Bucket = "xoelt-ingest"
    stage_bucket: Bucket = "xoelt-stage"


def _cast_limit(value: Any) -> int | float:
    """``max_cast_failures``: a whole count (``5``), a fraction (``0.01``) or ``"1%"``."""
    if isinstance(value, str):
        text = value.strip()
        percent = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
        if percent:
            value = float(percent.group(1)) / 100
        elif re.fullmatch(r"\d+", text):
            value = int(text)
        elif re.fullmatch(r"\d*\.\d+", text):
            value = float(text)
        else:
            raise ValueError(
                f"{value!r} is not a count (5), a fraction (0.01) or a percentage (1%)"
            )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a count (5), a fraction (0.01) or a percentage (1%)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count of cast failures cannot be negative ({value})")
        return value
    if not 0 <= value <= 1:
        raise ValueError(
            f"{value!r}: a fraction is between 0 and 1 (write a count as a whole number, 5, "
            'or a percentage as "5%")'
        )
    return value


CastLimit = Annotated[int | float, PlainValidator(_cast_limit)]
"""How many values of a typed column may fail to convert: an ``int`` is a count of values,
a ``float`` a fraction of the column's non-empty values."""


def _null_policy(value: Any) -> Any:
    # YAML reads an unquoted `null` as None: for on_missing_column that is the "null" policy.
    return "null" if value is None else value


class SchemaPolicy(StrictModel):
    """What happens when a pull's data does not match the schema: a column that appears, one
    that vanishes, values of a typed silver column that do not convert.

    Every key is optional; unset keys fall back key by key (source, then
    ``globals.schema_policy``, then the built-in default, see :meth:`under`). Defaults:
    ``on_new_column: add``, ``on_missing_column: auto`` (fail for a column ``silver.columns``
    types or ``silver.primary_key`` names, warn otherwise), ``max_cast_failures: 0``.
    """

    on_new_column: Literal["add", "fail"] | None = None
    on_missing_column: Annotated[
        Literal["auto", "fail", "warn", "null"] | None, BeforeValidator(_null_policy)
    ] = None
    max_cast_failures: CastLimit | None = None

    def under(self, defaults: SchemaPolicy) -> SchemaPolicy:
        """This policy, each unset key taken from ``defaults``."""
        # model_copy, not the constructor: validation would read an unset (None)
        # on_missing_column as the "null" policy.
        return self.model_copy(
            update={
                key: getattr(defaults, key)
                for key in type(self).model_fields
                if getattr(self, key) is None
            }
        )


class Globals(StrictModel):
    snowflake: SnowflakeGlobals
    storage: StorageGlobals = StorageGlobals()
    schema_policy: SchemaPolicy = SchemaPolicy()
    alerts: AlertsConfig | None = None  # replaces the target's alerts for this pipeline


class SourceSnowflake(StrictModel):
    target_table: Identifier
    database: Identifier | None = None
    schema_: Identifier | None = Field(None, alias="schema")


def _silver_type(value: str) -> str:
    normal = re.sub(r"\s+", "", value.upper())
    if not SILVER_TYPE.match(normal):
        raise ValueError(f"{value!r} is not a supported silver column type")
    return {"STRING": "VARCHAR", "TEXT": "VARCHAR", "DOUBLE": "FLOAT"}.get(normal, normal)


HardDeletes = Literal["invalidate", "ignore", "new_record"]


class SilverConfig(StrictModel):
    """How bronze becomes silver: the table, its key and typed columns (others stay VARCHAR).

    ``hard_deletes`` (``historical`` only, dbt snapshots' meanings): what a key missing from
    a window's pull means: ``invalidate`` closes its version at that window, ``ignore``
    keeps it open, ``new_record`` closes it and adds a deletion record (``IS_DELETED``).

    ``tests``: data tests run on the silver table after each transform
    (:mod:`xoelt.config.datatests`).

    ``enabled: false``: the source keeps bronze only (e.g. a bronze table other sources
    derive their silver from, see :class:`SourceConfig`); no other silver key may be given.
    """

    enabled: bool = True
    table: Identifier | None = None
    primary_key: list[Identifier] = []
    columns: dict[Identifier, Annotated[str, AfterValidator(_silver_type)]] = {}
    hard_deletes: HardDeletes = "invalidate"
    tests: list[DataTest] = []

    @model_validator(mode="after")
    def _nothing_when_disabled(self) -> SilverConfig:
        given = [
            k for k in type(self).model_fields if k != "enabled" and k in self.model_fields_set
        ]
        if not self.enabled and given:
            raise ValueError(
                f"{', '.join(given)}: not with enabled: false (the source has no silver)"
            )
        return self


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
MIN_PART_BYTES = 1024
MAX_PART_BYTES = 5 * 2**30  # S3's largest single PUT / CopyObject


def _byte_size(value: Any) -> int:
    """``part_size``: a whole number of bytes or ``"128MiB"``, ``"100 MB"``, ``"4KiB"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size (134217728, or with a unit: 128MiB, 100MB)")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size (134217728, or with a unit: 128MiB, 100MB)")
        size = int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])
    if not MIN_PART_BYTES <= size <= MAX_PART_BYTES:
        raise ValueError(
            f"{value!r}: a part is between {MIN_PART_BYTES} bytes (1KiB) and 5GiB (S3's "
            "largest single object write)"
        )
    return size


class OutputConfig(StrictModel):
    """How extract writes a window's data: ``format`` ``csv.gz`` (gzip-compressed CSV) or
    ``csv`` (plain), in parts of about ``part_size`` bytes as written (compressed for
    ``csv.gz``; default 128MiB, what Snowflake recommends per loaded file); a window smaller
    than that is one part. Every part starts with the same header. Unset ``format`` is the
    source type's default (``csv.gz``; ``csv`` for ``s3_upload``, whose byte copy gzip would
    slow down about twofold). ``gzip_level`` (1–9, default 1): higher is a few percent
    smaller and much slower.
    """

    format: Literal["csv.gz", "csv"] | None = None
    part_size: Annotated[int, PlainValidator(_byte_size)] = 128 * 2**20
    gzip_level: int = Field(1, ge=1, le=9)


DERIVED_FORBIDS = ("source_type", "extractor", "output", "snowflake")
"""Keys a derived source may not have: it extracts, stages and loads nothing."""


class SourceConfig(StrictModel):
    """One source: a real one (``source_type``, ``extractor``, ``snowflake.target_table``:
    extract, stage, load, transform), or a *derived* one: ``from_source`` names another
    (real) source of the pipeline whose bronze table it builds its own silver from, keeping
    the rows its ``where`` predicate (SQL over bronze's standardised column names) selects.
    A derived source runs only the transform stage, after its parent's.
    """

    source_type: str | None = None
    load_strategy: str
    extractor: dict[str, Any] = {}
    output: OutputConfig = OutputConfig()
    snowflake: SourceSnowflake | None = None
    silver: SilverConfig = SilverConfig()
    schema_policy: SchemaPolicy = SchemaPolicy()
    description: str | None = None
    from_source: SourceName | None = None
    where: Annotated[str, AfterValidator(parse_predicate)] | None = None

    @field_validator("source_type")
    @classmethod
    def _registered(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = _vocabulary(info).source_types
        if value is not None and value not in known:
            raise ValueError(f"unknown source_type {value!r}; valid: {', '.join(sorted(known))}")
        return value

    @field_validator("load_strategy")
    @classmethod
    def _strategy(cls, value: str, info: ValidationInfo) -> str:
        known = _vocabulary(info).load_strategies
        if value not in known:
            raise ValueError(f"{value!r} is not one of {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _kind(self) -> SourceConfig:
        if self.from_source is not None:
            given = [k for k in DERIVED_FORBIDS if k in self.model_fields_set]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: a derived source (from_source: {self.from_source}) "
                    "extracts nothing; it reads its parent's bronze table"
                )
            if not self.silver.enabled:
                raise ValueError("a derived source is its silver: silver.enabled cannot be false")
        else:
            if self.where is not None:
                raise ValueError("where: only for a derived source (with from_source)")
            missing = [k for k in ("source_type", "snowflake") if k not in self.model_fields_set]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} required (or from_source, for a source derived "
                    "from another source's bronze table)"
                )
        return self

    @model_validator(mode="after")
    def _strategy_needs(self, info: ValidationInfo) -> SourceConfig:
        needs_key = _vocabulary(info).load_strategies[self.load_strategy]
        if needs_key and self.silver.enabled and not self.silver.primary_key:
            raise ValueError(f"load_strategy {self.load_strategy} needs silver.primary_key")
        return self

    @property
    def derived(self) -> bool:
        """Whether this source builds its silver from another source's bronze."""
        return self.from_source is not None

    @property
    def type_name(self) -> str:
        """The source type of a real source (a derived one has none)."""
        if self.source_type is None:
            raise ValueError(f"a derived source (from_source: {self.from_source}) has no type")
        return self.source_type

    @property
    def target(self) -> SourceSnowflake:
        """Where a real source loads its bronze table (a derived one loads none)."""
        if self.snowflake is None:
            raise ValueError(f"a derived source (from_source: {self.from_source}) loads nothing")
        return self.snowflake


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


DBT_KEYS = ("project_dir", "select", "exclude", "profiles_dir", "target", "vars", "reads")


class TransformConfig(StrictModel):
    """What runs after silver: ``engine: xoelt`` (the default) materialises the gold models
    of ``sql/gold/<domain>/`` (``gold_models``: only those); ``engine: dbt`` runs ``dbt
    build`` on a dbt project instead (:mod:`xoelt.dbt_engine`).

    dbt keys: ``project_dir`` (the folder holding ``dbt_project.yml``, relative to the SQL
    root, ``sql/`` or ``$XOELT_SQL``, unless absolute), ``select`` / ``exclude`` (dbt node
    selectors, one string or a list), ``profiles_dir`` (your own ``profiles.yml``; default:
    one xoelt writes for the target), ``target`` (the profile's output to use with your own
    profiles), ``vars`` (more dbt vars beside xoelt's window vars).
    """

    engine: Literal["xoelt", "dbt"] = "xoelt"
    gold_models: list[Name] | None = None
    project_dir: str | None = None
    select: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    exclude: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    profiles_dir: str | None = None
    target: str | None = None
    vars: dict[str, Any] = {}
    reads: list[Identifier] = []

    @model_validator(mode="after")
    def _keys_for_engine(self) -> TransformConfig:
        if self.engine == "dbt":
            if not self.project_dir:
                raise ValueError("engine dbt needs project_dir (the folder of dbt_project.yml)")
            if self.gold_models is not None:
                raise ValueError("gold_models is for engine xoelt; with dbt use select")
        else:
            given = [k for k in DBT_KEYS if k in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only with engine: dbt")
        return self


class PipelineConfig(StrictModel):
    """One pipeline file, as written."""

    dag: DagConfig
    globals: Globals
    sources: dict[SourceName, SourceConfig] = Field(min_length=1)
    transform: TransformConfig = TransformConfig()


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline: its validated file, where it came from, and each source's
    ``extractor`` block validated by that source type's own model."""

    config: PipelineConfig
    path: Path | None = None
    extractors: Mapping[str, BaseModel] = field(default_factory=dict)

    @property
    def dag(self) -> DagConfig:
        return self.config.dag

    @property
    def globals(self) -> Globals:
        return self.config.globals

    @property
    def sources(self) -> dict[str, SourceConfig]:
        return self.config.sources

    @property
    def extracting(self) -> dict[str, SourceConfig]:
        """The sources that extract, stage and load (every one not derived)."""
        return {n: s for n, s in self.config.sources.items() if not s.derived}

    @property
    def transform(self) -> TransformConfig:
        return self.config.transform

    @property
    def name(self) -> str:
        return f"{self.dag.domain}/{self.dag.pipeline_name}"

    def extractor_config(self, source: str) -> BaseModel:
        """The source's ``extractor`` block, validated by its source type's own model."""
        return self.extractors[source]
