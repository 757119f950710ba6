"""Shared fixtures: an isolated XOELT_HOME and working directory per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def xoelt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``XOELT_HOME`` (objects + DuckDB files) for one test."""
    home = tmp_path / "xoelt-home"
    monkeypatch.setenv("XOELT_HOME", str(home))
    monkeypatch.delenv("XOELT_TARGET", raising=False)
    return home


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run with the repository as the working directory (pipelines/, sql/ resolve there)."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("XOELT_PIPELINES", raising=False)
    monkeypatch.delenv("XOELT_SQL", raising=False)
    yield REPO


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one, minus xoelt's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (boto3 talks HTTP to it, as to AWS)."""
    from tests.fakes.moto_s3 import start_moto_server

    server = start_moto_server()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for bucket in client.list_buckets().get("Buckets", []):
        objects = client.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])
        for obj in objects:
            client.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
    return client
