"""Pydantic models of the pipeline YAML (the original DAG factory's format, plus optional keys).

Every model forbids unknown keys so a typo is an error that names the key. Identifiers that
end up in SQL are validated against ``^[A-Za-z_][A-Za-z0-9_$]*$`` and upper-cased (Snowflake
folds unquoted names to upper case; we always quote, so we fold first).
"""

from __future__ import annotations

import codecs
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from xoelt.config.env import interpolate


def _is_secret(model: type[BaseModel], key: str) -> bool:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return "SecretRef" in repr(field.annotation)
    return False


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SILVER_TYPE = re.compile(
    r"^(VARCHAR|STRING|TEXT|BOOLEAN|DATE|FLOAT|DOUBLE|INTEGER|BIGINT|NUMBER(\(\d{1,2}(,\s*\d{1,2})?\))?"
    r"|TIMESTAMP_TZ|TIMESTAMP_NTZ|TIMESTAMP_LTZ|VARIANT)$"
)

LoadStrategy = Literal["full_refresh", "incremental", "historical"]


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"{value!r} is not a valid identifier (letters, digits, _ and $; not starting with a digit)"
        )
    return value.upper()


def _name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, _ and -)")
    return value


def _bucket(value: str) -> str:
    if not BUCKET.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
    return value


def _base_url(value: str) -> str:
    if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
        raise ValueError(f"{value!r} is not an http(s) URL (http:// only for a local server)")
    return value.rstrip("/")


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""An API root such as ``https://api.sproutsocial.com`` (no trailing slash)."""
Encoding = Annotated[str, AfterValidator(_encoding)]
"""A text encoding Python knows (``utf-8-sig``, ``latin-1``…)."""
Name = Annotated[str, AfterValidator(_name)]
Bucket = Annotated[str, AfterValidator(_bucket)]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors; ``${VAR}`` resolved from the env.

    Interpolation happens only when validation is given ``context={"env": ...}`` (the loader
    does this) and never for :data:`~xoelt.config.env.Secret` fields, which stay references.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _interpolate_env(cls, data: Any, info: ValidationInfo) -> Any:
        env = (info.context or {}).get("env")
        if env is None or not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            if isinstance(value, str) and "${" in value and not _is_secret(cls, key):
                try:
                    out[key] = interpolate(value, env)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return out


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
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as America/New_York)"
            ) from None
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
        from croniter import croniter

        if not croniter.is_valid(value) or len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a valid 5-field cron expression")
        return value


class SnowflakeGlobals(StrictModel):
    database: Identifier
    schema_: Identifier = Field("BRONZE", alias="schema")
    silver_schema: Identifier = "SILVER"
    gold_schema: Identifier = "GOLD"


class StorageGlobals(StrictModel):
    ingest_bucket: Bucket = "xoelt-ingest"
    stage_bucket: Bucket = "xoelt-stage"


class Globals(StrictModel):
    snowflake: SnowflakeGlobals
    storage: StorageGlobals = StorageGlobals()


class SourceSnowflake(StrictModel):
    target_table: Identifier
    database: Identifier | None = None
    schema_: Identifier | None = Field(None, alias="schema")


def _silver_type(value: str) -> str:
    normal = re.sub(r"\s+", "", value.upper())
    if not SILVER_TYPE.match(normal):
        raise ValueError(f"{value!r} is not a supported silver column type")
    return {"STRING": "VARCHAR", "TEXT": "VARCHAR", "DOUBLE": "FLOAT"}.get(normal, normal)


class SilverConfig(StrictModel):
    """How bronze becomes silver: the table, its key and typed columns (others stay VARCHAR)."""

    table: Identifier | None = None
    primary_key: list[Identifier] = []
    columns: dict[Identifier, Annotated[str, AfterValidator(_silver_type)]] = {}


class SourceConfig(StrictModel):
    source_type: str
    load_strategy: LoadStrategy
    extractor: dict[str, Any] = {}
    snowflake: SourceSnowflake
    silver: SilverConfig = SilverConfig()
    description: str | None = None

    @field_validator("source_type")
    @classmethod
    def _registered(cls, value: str) -> str:
        from xoelt.sources import source_types

        known = source_types()
        if value not in known:
            raise ValueError(f"unknown source_type {value!r}; valid: {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _strategy_needs(self) -> SourceConfig:
        if self.load_strategy in ("incremental", "historical") and not self.silver.primary_key:
            raise ValueError(f"load_strategy {self.load_strategy} needs silver.primary_key")
        return self


class TransformConfig(StrictModel):
    """Which gold models this pipeline materialises (default: all of sql/gold/<domain>/)."""

    gold_models: list[Name] | None = None


SourceName = Annotated[str, AfterValidator(lambda v: _identifier(v) and v)]


class Pipeline(StrictModel):
    dag: DagConfig
    globals: Globals
    sources: dict[SourceName, SourceConfig] = Field(min_length=1)
    transform: TransformConfig = TransformConfig()

    _path: Path | None = PrivateAttr(None)
    _extractors: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.dag.domain}/{self.dag.pipeline_name}"

    @property
    def path(self) -> Path | None:
        return self._path

    def extractor_config(self, source: str) -> BaseModel:
        """The source's ``extractor`` block, validated by its source type's own model."""
        return self._extractors[source]
