"""Targets: *where* a pipeline runs. ``local`` (built in) is a directory plus DuckDB.

Other targets are named in ``targets.yaml`` (or ``$XOELT_TARGETS``) and chosen with
``--target`` or ``$XOELT_TARGET``. Credentials in that file are ``${VAR}`` references.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from xoelt.config.env import Secret
from xoelt.config.models import IDENTIFIER, Identifier, StrictModel
from xoelt.errors import ConfigError, InputError

if TYPE_CHECKING:
    from xoelt.plan import RunPlan
    from xoelt.storage.base import ObjectStore
    from xoelt.warehouse.base import Warehouse


class _TargetBase(StrictModel):
    home: str | None = None

    @property
    def home_dir(self) -> Path:
        """Local state: scratch files and locks (and, for ``local``, objects and DuckDB)."""
        return Path(self.home or os.environ.get("XOELT_HOME") or ".xoelt")


class LocalTarget(_TargetBase):
    """The embedded default: objects in ``<home>/objects``, DuckDB files in ``<home>/warehouse``."""

    type: Literal["local"] = "local"
    copy_transformations: ClassVar[bool] = True
    # one process holds a DuckDB file's write lock: a backfill's windows run one at a time
    parallel_windows: ClassVar[bool] = False

    @property
    def warehouse_kind(self) -> str:
        return "duckdb"

    def file_location(self, bucket: str, key: str) -> str:
        """How DuckDB reads a staged file: its path in the directory store."""
        return str(self.home_dir / "objects" / bucket / key)

    def open_store(self) -> ObjectStore:
        from xoelt.storage.local import LocalObjectStore

        return LocalObjectStore(self.home_dir / "objects")

    def open_warehouse(self, plan: RunPlan, env: Mapping[str, str]) -> Warehouse:
        from xoelt.warehouse.duckdb import DuckDBWarehouse

        databases = sorted({sp.bronze_table.database for sp in plan.sources})
        return DuckDBWarehouse(self.home_dir / "warehouse", databases, plan.database)


class S3Settings(StrictModel):
    """Where the buckets are: AWS by default; ``endpoint_url`` for MinIO, moto, PrivateLink."""

    endpoint_url: str | None = None
    region: str | None = None


class SnowflakeTarget(_TargetBase):
    """Production: buckets on S3, tables in Snowflake.

    ``stage`` is an external stage (``DB.SCHEMA.NAME``) whose URL is the stage bucket
    (``s3://<globals.storage.stage_bucket>/``), created once by whoever owns the account with
    a storage integration; COPY INTO reads the staged files through it.
    ``copy_transformations: false`` is for emulators (fakesnow) that cannot run
    ``COPY … FROM (SELECT $1, METADATA$FILENAME …)``.
    """

    type: Literal["snowflake"]
    account: str
    user: str
    password: Secret | None = None
    private_key_file: str | None = None
    role: Identifier | None = None
    warehouse: Identifier | None = None
    stage: str
    host: str | None = None
    port: int | None = None
    protocol: Literal["https", "http"] | None = None
    copy_transformations: bool = True
    parallel_windows: ClassVar[bool] = True
    login_timeout: int = 60
    s3: S3Settings = S3Settings()

    @field_validator("stage")
    @classmethod
    def _qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 3 or not all(IDENTIFIER.match(p) for p in parts):
            raise ValueError(f"{value!r} must be a qualified stage name DATABASE.SCHEMA.STAGE")
        return ".".join(p.upper() for p in parts)

    @model_validator(mode="after")
    def _one_credential(self) -> SnowflakeTarget:
        if (self.password is None) == (self.private_key_file is None):
            raise ValueError("set exactly one of password (a ${VAR}) or private_key_file")
        return self

    @property
    def warehouse_kind(self) -> str:
        return "snowflake"

    def file_location(self, bucket: str, key: str) -> str:
        """How COPY INTO reads a staged file: ``@"DB"."SCHEMA"."STAGE"/<key>``.

        The stage's URL is the stage bucket, so ``bucket`` is implied by the stage.
        """
        return "@" + ".".join(f'"{p}"' for p in self.stage.split(".")) + "/" + key

    def open_store(self) -> ObjectStore:
        from xoelt.storage.s3 import S3ObjectStore

        return S3ObjectStore(endpoint_url=self.s3.endpoint_url, region=self.s3.region)

    def open_warehouse(self, plan: RunPlan, env: Mapping[str, str]) -> Warehouse:
        from xoelt.warehouse import warehouse_class

        cls = warehouse_class("snowflake")
        return cls(
            self.connect_kwargs(env), plan.database, copy_transformations=self.copy_transformations
        )

    def connect_kwargs(self, env: Mapping[str, str]) -> dict[str, Any]:
        """Arguments for ``snowflake.connector.connect``; secrets resolved here, at use."""
        kwargs: dict[str, Any] = {
            "account": self.account,
            "user": self.user,
            "login_timeout": self.login_timeout,
            "application": "xoelt",
            "session_parameters": {"TIMEZONE": "UTC", "QUERY_TAG": "xoelt"},
        }
        if self.password is not None:
            kwargs["password"] = self.password.resolve(env).get_secret_value()
        if self.private_key_file:
            kwargs["private_key_file"] = self.private_key_file
        for key in ("role", "warehouse", "host", "port", "protocol"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs


AnyTarget = LocalTarget | SnowflakeTarget
Target = Annotated[AnyTarget, Field(discriminator="type")]
_ADAPTER: TypeAdapter[AnyTarget] = TypeAdapter(Target)


def targets_file() -> Path:
    return Path(os.environ.get("XOELT_TARGETS", "targets.yaml"))


def resolve_target(name: str | None) -> tuple[str, AnyTarget]:
    """The named target (flag, then ``$XOELT_TARGET``, then ``local``)."""
    chosen = name or os.environ.get("XOELT_TARGET") or "local"
    defined: dict[str, object] = {}
    path = targets_file()
    if path.is_file():
        from xoelt.config.yamlpos import line_for, load_yaml_with_lines

        data, lines = load_yaml_with_lines(path)
        if not isinstance(data, dict):
            raise ConfigError("targets file must map names to targets", file=str(path), line=1)
        defined = data
        if chosen in defined:
            try:
                from xoelt.config.env import environment

                target = _ADAPTER.validate_python(defined[chosen], context={"env": environment()})
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = (chosen, *err["loc"])
                raise ConfigError(
                    err["msg"].removeprefix("Value error, "),
                    file=str(path),
                    line=line_for(lines, loc),
                    key=".".join(str(p) for p in loc),
                ) from None
            return chosen, target
    if chosen == "local":
        return chosen, LocalTarget()
    valid = ", ".join(sorted({"local", *defined}))
    raise InputError(f"unknown target {chosen!r}; valid: {valid}")
