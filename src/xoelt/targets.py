"""Targets: *where* a pipeline runs — an object store plus a warehouse.

``local`` (built in, the embedded default) is a directory store and DuckDB files under the
home directory. Other targets are named in ``targets.yaml`` (``$XOELT_TARGETS``) and chosen
with ``--target`` or ``$XOELT_TARGET``; ``type: snowflake`` is the production preset (S3 plus
Snowflake, the account keys at the top level and the store under ``s3:``). Either may name a
``metrics:`` endpoint (see :mod:`xoelt.metrics`). Credentials in that file are ``${VAR}``
references. Each store and warehouse config builds its own adapter.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Protocol, get_args

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from xoelt.config.alerts import AlertsConfig
from xoelt.config.env import environment
from xoelt.config.types import StrictModel
from xoelt.config.yamlpos import line_for, load_yaml_with_lines
from xoelt.errors import ConfigError, InputError
from xoelt.metrics import MetricsConfig
from xoelt.settings import Settings
from xoelt.storage.base import ObjectStore
from xoelt.storage.local import LocalStoreConfig
from xoelt.storage.s3 import S3StoreConfig
from xoelt.warehouse.base import BronzeLoad, Capabilities, RunStamp, Script, Warehouse
from xoelt.warehouse.duckdb import DuckDBConfig
from xoelt.warehouse.snowflake import SnowflakeConfig


class StoreConfig(Protocol):
    @property
    def type(self) -> str: ...

    def open(self) -> ObjectStore: ...


class WarehouseConfig(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def open(
        self,
        databases: Sequence[str],
        default_database: str,
        env: Mapping[str, str],
        read_only: Sequence[str] = (),
    ) -> Warehouse: ...

    def location(self, database: str) -> str: ...

    def bronze_script(
        self, load: BronzeLoad, existing: Sequence[str] | None, run: RunStamp | None
    ) -> Script: ...


class LocalTarget(StrictModel):
    """The embedded default: objects in ``<home>/objects``, DuckDB files in ``<home>/warehouse``."""

    type: Literal["local"] = "local"
    home: str | None = None
    alerts: AlertsConfig | None = None
    metrics: MetricsConfig | None = None

    def bind(self, settings: Settings) -> BoundTarget:
        home = Path(self.home) if self.home else settings.home
        store = LocalStoreConfig(root=str(home / "objects"))
        warehouse = DuckDBConfig(directory=str(home / "warehouse"))
        return BoundTarget(
            self.type, home, store, warehouse, store.local_path, self.alerts, self.metrics
        )


class SnowflakeTarget(SnowflakeConfig):
    """Production: buckets on S3 (``s3:``), tables in Snowflake (every other key)."""

    home: str | None = None
    s3: S3StoreConfig = S3StoreConfig()
    alerts: AlertsConfig | None = None
    metrics: MetricsConfig | None = None

    def bind(self, settings: Settings) -> BoundTarget:
        home = Path(self.home) if self.home else settings.home

        def location(bucket: str, key: str) -> str:
            # the stage's URL is the stage bucket, so ``bucket`` is implied by the stage
            return self.file_location(key)

        return BoundTarget(self.type, home, self.s3, self, location, self.alerts, self.metrics)


@dataclass(frozen=True)
class BoundTarget:
    """A target with its home resolved: a store config, a warehouse config, and how the
    warehouse reads a staged object (``file_location(bucket, key)``: a path for DuckDB,
    ``@stage/key`` for Snowflake's COPY), the target's ``alerts:`` block, and where run
    metrics go (None: nowhere)."""

    type: str
    home: Path
    store: StoreConfig
    warehouse: WarehouseConfig
    file_location: Callable[[str, str], str]
    alerts: AlertsConfig | None = None
    metrics: MetricsConfig | None = None


AnyTarget = LocalTarget | SnowflakeTarget
_TYPES: dict[str, type[BaseModel]] = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in (LocalTarget, SnowflakeTarget)
}


def _unknown_key(model: type[BaseModel], path: list[str]) -> str:
    """'unknown key' with the closest valid key at that level of the target's model."""
    for part in path[:-1]:
        field = model.model_fields.get(part)
        nested = field.annotation if field else None
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            return f"unknown key {path[-1]!r}"
        model = nested
    allowed = [f.alias or name for name, f in model.model_fields.items()]
    hint = difflib.get_close_matches(path[-1], allowed, n=1, cutoff=0.6)
    found = f"did you mean {hint[0]!r}?" if hint else f"valid keys: {', '.join(allowed)}"
    return f"unknown key {path[-1]!r}; {found}"


_ADAPTER: TypeAdapter[AnyTarget] = TypeAdapter(Annotated[AnyTarget, Field(discriminator="type")])


def resolve_target(name: str | None, settings: Settings) -> tuple[str, BoundTarget]:
    """The named target (flag, then ``$XOELT_TARGET``, then ``local``)."""
    chosen = name or settings.target or "local"
    defined: dict[str, object] = {}
    path = settings.targets_file
    if path.is_file():
        data, lines = load_yaml_with_lines(path)
        if not isinstance(data, dict):
            raise ConfigError("targets file must map names to targets", file=str(path), line=1)
        defined = data
        if chosen in defined:
            try:
                target = _ADAPTER.validate_python(defined[chosen], context={"env": environment()})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = list(err["loc"])
                model = _TYPES.get(str(where[0])) if where else None
                if model is not None:  # the union's tag, not a key of the file
                    where = where[1:]
                loc = (chosen, *where)
                message = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden" and model is not None:
                    message = _unknown_key(model, [str(p) for p in where])
                raise ConfigError(
                    message,
                    file=str(path),
                    line=line_for(lines, loc),
                    key=".".join(str(p) for p in loc),
                ) from None
            return chosen, target.bind(settings)
    if chosen == "local":
        return chosen, LocalTarget().bind(settings)
    valid = ", ".join(sorted({"local", *defined}))
    raise InputError(f"unknown target {chosen!r}; valid: {valid}")
