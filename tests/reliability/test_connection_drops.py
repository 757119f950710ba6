"""The warehouse connection dropped mid-statement, on the production path (fakesnow + moto).

A proxy between the real Snowflake connector and fakesnow's server closes the connection
during one statement — a COPY into bronze, the silver write (MERGE or INSERT), gold's
CREATE, a COMMIT — either before the statement reached the warehouse or after it ran (the
answer lost). Whatever the connector then does, the run must either succeed with exactly the
clean result or fail in one line (exit 1) with the warehouse as it was; and a rerun without
the fault converges to the clean state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Project
from tests.e2e.test_snowflake_target import PIPE, sf_project
from tests.e2e.test_snowflake_target import run as run_on_snowflake
from tests.fakes.dropping_proxy import Drop, DroppingProxy
from tests.integration.snowflake_fixtures import fakesnow_kwargs
from tests.reliability.report import record

__all__ = ["fakesnow_kwargs", "sf_project"]

DAY = "2026-11-04"
PER_RUN = {"_XO_RUN_ID", "_XO_LOADED_AT"}

CASES = [
    pytest.param(r"^\s*COPY INTO", "before", id="copy-before"),
    pytest.param(r"^\s*COPY INTO", "after", id="copy-after"),
    pytest.param(r'^\s*(MERGE|INSERT) INTO "DEMO_DB"\."SILVER"', "before", id="silver-before"),
    pytest.param(r'^\s*(MERGE|INSERT) INTO "DEMO_DB"\."SILVER"', "after", id="silver-after"),
    pytest.param(r'^\s*CREATE OR REPLACE TABLE "DEMO_DB"\."GOLD"', "after", id="gold-after"),
    pytest.param(r"^\s*COMMIT", "before", id="commit-before"),
    pytest.param(r"^\s*COMMIT", "after", id="commit-after"),
]
FAST = {"silver-after"}  # in `make test` (it found the bug); the rest run with `make chaos`


@pytest.fixture
def proxied(sf_project: Project, fakesnow_kwargs: dict[str, Any]) -> Iterator[DroppingProxy]:
    """``sf_project`` whose target reaches fakesnow through a :class:`DroppingProxy`."""
    with DroppingProxy(fakesnow_kwargs["host"], int(fakesnow_kwargs["port"])) as proxy:
        path = sf_project.root / "targets.yaml"
        targets = yaml.safe_load(path.read_text())
        targets["prod"]["host"], targets["prod"]["port"] = "127.0.0.1", proxy.port
        path.write_text(yaml.safe_dump(targets))
        yield proxy


def snapshot(kwargs: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every BRONZE, SILVER and GOLD row of DEMO_DB, minus what differs per run."""
    import snowflake.connector

    con = snowflake.connector.connect(**kwargs, database="DEMO_DB")
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_catalog = 'DEMO_DB' AND table_schema IN ('BRONZE', 'SILVER', 'GOLD') "
                "AND table_type = 'BASE TABLE'"
            )
            for schema, table in sorted(cur.fetchall()):
                cur.execute(f'SELECT * FROM "{schema}"."{table}" LIMIT 0')
                keep = [d[0] for d in cur.description if d[0] not in PER_RUN]
                listed = ", ".join(f'"{c}"' for c in keep)
                cur.execute(f'SELECT {listed} FROM "{schema}"."{table}"')
                out[f"{schema}.{table}"] = sorted(cur.fetchall(), key=repr)
    finally:
        con.close()
    return out


def case_params() -> list[Any]:
    return [
        c if c.id in FAST else pytest.param(*c.values, id=c.id, marks=pytest.mark.chaos)
        for c in CASES
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("pattern", "when"), case_params())
def test_a_dropped_connection_fails_cleanly_or_succeeds_exactly(
    sf_project: Project,
    proxied: DroppingProxy,
    fakesnow_kwargs: dict[str, Any],
    pattern: str,
    when: str,
    request: pytest.FixtureRequest,
) -> None:
    case = f"connection dropped: {request.node.callspec.id}"
    for day in ("2026-11-03", DAY):
        run_on_snowflake(sf_project, "run", PIPE, "--date", day)
    clean = snapshot(fakesnow_kwargs)
    assert clean["GOLD.FCT_CONTACTS"], "the clean run built gold"

    proxied.drop = drop = Drop(pattern, "after" if when == "after" else "before")
    faulty = run_on_snowflake(sf_project, "run", PIPE, "--date", DAY, check=False)
    proxied.drop = None
    assert drop.dropped, f"no statement matched {pattern!r}: {proxied.statements[-5:]}"
    after_fault = snapshot(fakesnow_kwargs)
    errors = [line for line in faulty.stderr.splitlines() if line.startswith("error: ")]
    if faulty.returncode == 0:
        handled = after_fault == clean
        assert after_fault == clean, "a run that succeeded through the drop changed the result"
    else:
        assert faulty.returncode == 1, faulty.stderr
        assert len(errors) == 1, faulty.stderr
        assert "Traceback" not in faulty.stderr
        # a rerun of a loaded window: the warehouse as it was is also the clean state
        handled = after_fault == clean
        assert after_fault == clean, f"the failed run left the warehouse changed: {errors}"
    rerun = run_on_snowflake(sf_project, "run", PIPE, "--date", DAY, check=False)
    assert rerun.returncode == 0, rerun.stderr
    converged = snapshot(fakesnow_kwargs) == clean
    record(
        "fault",
        case,
        handled and converged,
        note=f"exit {faulty.returncode}: {errors[0] if errors else 'ok'}"[:200],
    )
    assert converged
