"""Target settings: every external call's bounds and the S3 copy knobs, from targets.yaml."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from xoelt.errors import ConfigError
from xoelt.settings import Settings
from xoelt.storage.s3 import FIVE_GB, S3StoreConfig
from xoelt.targets import SnowflakeTarget, resolve_target

PROD: dict[str, Any] = {
    "type": "snowflake",
    "account": "xy12345.us-east-1",
    "user": "XOELT_LOADER",
    "password": "${SNOWFLAKE_PASSWORD}",
    "stage": "XOELT_DB.PUBLIC.XOELT_STAGE",
}


def resolve(tmp_path: Path, target: dict[str, Any]) -> Any:
    (tmp_path / "targets.yaml").write_text(yaml.safe_dump({"prod": target}, sort_keys=False))
    settings = Settings(home=tmp_path / "h", targets_file=tmp_path / "targets.yaml")
    return resolve_target("prod", settings)[1]


def test_defaults_bound_every_snowflake_call() -> None:
    kwargs = SnowflakeTarget.model_validate(PROD).connect_kwargs({"SNOWFLAKE_PASSWORD": "pw"})
    assert kwargs["login_timeout"] == 60
    assert kwargs["network_timeout"] == 300  # the connector's default is to retry forever
    assert kwargs["socket_timeout"] == 120
    assert kwargs["session_parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"] == 3600


def test_snowflake_bounds_are_settable(tmp_path: Path) -> None:
    bound = resolve(
        tmp_path,
        PROD
        | {
            "login_timeout": 5,
            "network_timeout": 30,
            "socket_timeout": 10,
            "statement_timeout": 90,
        },
    )
    kwargs = bound.warehouse.connect_kwargs({"SNOWFLAKE_PASSWORD": "pw"})
    assert (kwargs["login_timeout"], kwargs["network_timeout"], kwargs["socket_timeout"]) == (
        5,
        30,
        10,
    )
    assert kwargs["session_parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"] == 90
    # sleeps between the connector's retries: at most a quarter of the tightest budget (5 s)
    assert max(itertools.islice(kwargs["backoff_policy"](), 200)) == 1


def test_default_backoff_keeps_the_connectors_cap() -> None:
    kwargs = SnowflakeTarget.model_validate(PROD).connect_kwargs({"SNOWFLAKE_PASSWORD": "pw"})
    sleeps = list(itertools.islice(kwargs["backoff_policy"](), 500))
    assert sleeps[0] == 1 and max(sleeps) == 15  # 60 s login_timeout // 4


def test_s3_defaults_are_bounded_too() -> None:
    config = S3StoreConfig().client_config()
    assert config["connect_timeout"] == 10 and config["read_timeout"] == 60
    assert config["retries"] == {"mode": "standard", "total_max_attempts": 5}
    defaults = S3StoreConfig()
    assert defaults.multipart_copy_threshold == 256 * 1024**2
    assert defaults.copy_part_size == 512 * 1024**2
    assert (defaults.copy_concurrency, defaults.copy_part_attempts) == (8, 3)


def test_s3_settings_from_targets_yaml(tmp_path: Path) -> None:
    s3 = {
        "region": "us-east-1",
        "connect_timeout": 2,
        "read_timeout": 30,
        "max_attempts": 3,
        "multipart_copy_threshold": 512 * 1024**2,
        "copy_part_size": 256 * 1024**2,
        "copy_concurrency": 16,
        "copy_part_attempts": 5,
    }
    store = resolve(tmp_path, PROD | {"s3": s3}).store
    assert store.multipart_copy_threshold == 512 * 1024**2
    assert store.copy_part_size == 256 * 1024**2
    assert store.copy_concurrency == 16
    assert store.copy_part_attempts == 5
    opened = store.open()
    assert (opened.copy_concurrency, opened.copy_part_attempts) == (16, 5)
    config = store.client_config()
    assert config["retries"]["total_max_attempts"] == 3
    assert config["max_pool_connections"] >= 16  # a connection for each concurrent part


@pytest.mark.parametrize(
    ("s3", "key", "message"),
    [
        ({"multipart_copy_threshold": FIVE_GB + 1}, "multipart_copy_threshold", "less than or"),
        ({"copy_part_size": 1024}, "copy_part_size", "greater than or equal to 5242880"),
        ({"copy_concurrency": 0}, "copy_concurrency", "greater than or equal to 1"),
        ({"copy_part_attempts": 0}, "copy_part_attempts", "greater than or equal to 1"),
        ({"read_timeout": 0}, "read_timeout", "greater than 0"),
        ({"multipart_threshold": 1}, "multipart_threshold", "multipart_copy_threshold"),
    ],
)
def test_bad_s3_settings_name_file_line_and_key(
    tmp_path: Path, s3: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        resolve(tmp_path, PROD | {"s3": s3})
    assert info.value.key == f"prod.s3.{key}"
    assert info.value.file == str(tmp_path / "targets.yaml") and info.value.line


def test_bad_snowflake_timeout_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="greater than or equal to 1") as info:
        resolve(tmp_path, PROD | {"network_timeout": 0})
    assert info.value.key == "prod.network_timeout"
