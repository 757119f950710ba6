"""Every external call is bounded: a dead endpoint fails the stage (exit 1) within its budget.

Two kinds of dead endpoint on 127.0.0.1 (``tests/fakes/dead.py``): a TCP server that accepts
and never answers, and an HTTP server that answers 500 forever. Each is used as the S3
endpoint, the Snowflake host and an HTTP source's ``base_url`` of a real ``xoelt`` run in a
subprocess. The budgets are tiny; each test asserts the run ended within budget plus slack
for the interpreter's start (a bound, not a speed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Project
from tests.fakes.dead import failing_server, silent_server, snowflake_login_then_500

PIPE = "demo/gladly_demo"
SLACK = 6.0  # interpreter start, imports, the connector's first backoff
ENV = {
    "XO_TEST_SNOWFLAKE_PASSWORD": "Zq9-secret-pw",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "GLADLY_API_USER": "agent@example.com",
    "GLADLY_API_TOKEN": "gl-secret-token",
}


@contextmanager
def silent_url() -> Generator[str]:
    with silent_server() as (host, port):
        yield f"http://{host}:{port}"


@contextmanager
def failing_url() -> Generator[str]:
    with failing_server() as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


DEAD: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "never answers": silent_url,
    "answers 500": failing_url,
}


def snowflake_target(host: str, port: int, s3_endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "snowflake",
        "account": "xo_test",
        "user": "XOELT",
        "password": "${XO_TEST_SNOWFLAKE_PASSWORD}",
        "host": host,
        "port": port,
        "protocol": "http",
        "stage": "DEMO_DB.BRONZE.XO_STAGE",
        "copy_transformations": False,
        **extra,
    } | {"s3": {"endpoint_url": s3_endpoint, "region": "us-east-1"}}


def timed(project: Project, *args: str) -> tuple[float, Any]:
    started = time.monotonic()
    proc = project.xoelt(*args, env=ENV)
    return time.monotonic() - started, proc


def one_error_line(proc: Any) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for secret in ("Zq9-secret-pw", "gl-secret-token"):
        assert secret not in proc.stderr + proc.stdout
    return lines[0]


@pytest.mark.parametrize("dead", sorted(DEAD))
def test_dead_s3_endpoint_fails_extract_within_budget(project: Project, dead: str) -> None:
    with DEAD[dead]() as url:
        s3: dict[str, Any] = {"endpoint_url": url, "region": "us-east-1"}
        s3 |= {"connect_timeout": 1, "read_timeout": 1, "max_attempts": 2}
        target = snowflake_target("127.0.0.1", 9, url) | {"s3": s3}
        (project.root / "targets.yaml").write_text(yaml.safe_dump({"dead": target}))
        elapsed, proc = timed(project, "extract", PIPE, "--date", "2026-11-03", "--target", "dead")
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("error: extract failed source=contact_timestamps window=[2026-11-02")
    assert "s3://xoelt-stage/locks/" in line  # the first call: the run's lock
    # two attempts of at most 1 s connect + 1 s read each, and botocore's backoff between
    assert elapsed < 2 * (1 + 1) + 1 + SLACK, (elapsed, line)


@pytest.mark.parametrize("dead", sorted(DEAD))
def test_dead_snowflake_endpoint_fails_within_login_timeout(
    project: Project, moto_endpoint: str, dead: str
) -> None:
    with DEAD[dead]() as url:
        host, port = url.removeprefix("http://").split(":")
        target = snowflake_target(host, int(port), moto_endpoint, login_timeout=2, socket_timeout=1)
        (project.root / "targets.yaml").write_text(yaml.safe_dump({"dead": target}))
        elapsed, proc = timed(project, "run", PIPE, "--date", "2026-11-03", "--target", "dead")
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("error: load failed source=contact_timestamps, work_sessions")
    assert "cannot connect to Snowflake account xo_test" in line
    # the connector stops retrying after login_timeout; one request (socket_timeout) and one
    # backoff sleep may run past it; xoelt starts no second connect once it has passed
    assert elapsed < 2 + 1 + 4 + SLACK, (elapsed, line)


def test_snowflake_answering_500_to_statements_fails_within_statement_timeout(
    project: Project, moto_endpoint: str
) -> None:
    """The issue: against 500s the connector retried for over 900 s (network_timeout unset)."""
    with snowflake_login_then_500() as server:
        target = snowflake_target(
            "127.0.0.1",
            server.server_address[1],
            moto_endpoint,
            network_timeout=3,
            socket_timeout=1,
            statement_timeout=3,
        )
        (project.root / "targets.yaml").write_text(yaml.safe_dump({"flaky": target}))
        elapsed, proc = timed(project, "run", PIPE, "--date", "2026-11-03", "--target", "flaky")
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("error: load failed source=contact_timestamps, work_sessions")
    assert "HTTP 500" in line
    # statement_timeout bounds the statement and the connector's retries of it (3 s); its
    # timer then cancels the statement, a request retried for network_timeout (3 s) that
    # the interpreter waits for at exit; one request (socket_timeout) and one sleep between
    # retries (capped at a quarter of the budget: 1 s) may run past each budget. The
    # connector's own backoff could draw 8 s sleeps here (14.4 s in a CI run).
    assert elapsed < 3 + 3 + 1 + 1 + SLACK, (elapsed, line)
    assert 2 <= server.hits < 20  # retried, but not forever
    (login,) = server.logins
    params = login["SESSION_PARAMETERS"]
    assert params["STATEMENT_TIMEOUT_IN_SECONDS"] == 3
    assert params["QUERY_TAG"] == "xoelt"


API_PIPELINE = """\
dag:
  domain: demo
  pipeline_name: api_dead
  schedule: "0 6 * * *"
  time_window: {{refresh_type: daily, lag: {{days: 1}}, timezone: "America/New_York"}}
globals:
  snowflake: {{database: DEMO_DB}}
sources:
  contact_timestamps:
    source_type: gladly_api
    load_strategy: full_refresh
    extractor:
      metric_set: ContactTimestampsReport
      base_url: "{url}"
      retry:
        max_attempts: 20
        initial_backoff: 0.2
        max_backoff: 0.5
        timeout_seconds: 1
        connect_timeout_seconds: 1
        total_seconds: 3
    snowflake: {{target_table: GLADLY_CONTACT_TIMESTAMPS}}
"""


@pytest.mark.parametrize("dead", sorted(DEAD))
def test_dead_http_source_fails_extract_within_its_retry_budget(
    project: Project, dead: str
) -> None:
    with DEAD[dead]() as url:
        path = project.root / "pipelines" / "demo" / "api_dead.yaml"
        path.write_text(API_PIPELINE.format(url=url))
        elapsed, proc = timed(project, "extract", "demo/api_dead", "--date", "2026-11-03")
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("error: extract failed source=contact_timestamps")
    assert "retry budget 3 s" in line
    # 20 attempts would take 20+ s; the 3 s budget stops them (each attempt's timeouts are
    # cut to what is left of it)
    assert elapsed < 3 + SLACK, (elapsed, line)
