"""Rate limits held across real processes: Gladly's 2 at once and 10 a minute, Sprout's 60.

Each test starts several processes (``tests/integration/sources/ratelimit_driver.py``: the real
limiter and the real source code, or ``xoelt extract`` itself) against one fake API that
enforces the documented limit as the real one does (429 beyond it) and records what it saw
(:class:`tests.fakes.api.Limit`): peak concurrency, the most arrivals in any window, the
429s. A "minute" is scaled to ``MINUTE`` seconds (``XOELT_RATE_LIMIT_MINUTE_SECONDS`` for
the CLI) so a budget is exhausted in seconds. Both backends: the local target's file lock
and S3 through a moto server on 127.0.0.1 (conditional PUTs, which moto 5.2 enforces:
``If-None-Match: *`` and a stale ``If-Match`` both answer 412 PreconditionFailed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, clean_env
from tests.fakes import FakeApis
from tests.fakes.gladly import FakeGladly, csv_text
from tests.fakes.sprout import FakeSprout

MINUTE = 2.0  # seconds in a test's rate-limit "minute"
HEADER = ["Contact ID", "Channel"]
ROWS = [["c1", "CHAT"], ["c2", "EMAIL"]]
USER, TOKEN = "robot@example.com", "gl-tok-driver"  # what the driver sends
SPROUT_TOKEN, CUSTOMER = "sp-tok-driver", "4242"


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the shared state lives: a directory, or a fresh bucket on moto."""
    if request.param == "local":
        return {"store": {"type": "local", "root": str(tmp_path / "objects")}, "bucket": "stage"}
    endpoint = request.getfixturevalue("moto_endpoint")
    client = request.getfixturevalue("s3_client")
    name = f"stage-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return {"store": {"type": "s3", "endpoint": endpoint}, "bucket": name}


@pytest.fixture
def gladly(fake_apis: FakeApis) -> Iterator[FakeGladly]:
    with fake_apis.use(FakeGladly, own_port=True) as api:
        api.user, api.token = USER, TOKEN
        api.reports["ContactTimestampsReport"] = csv_text(HEADER, ROWS)
        yield api


@pytest.fixture
def sprout(fake_apis: FakeApis) -> Iterator[FakeSprout]:
    with fake_apis.use(FakeSprout, own_port=True) as api:
        api.token, api.customer = SPROUT_TOKEN, CUSTOMER
        api.messages = [
            {"guid": f"m{i}", "created_time": f"2026-11-01T12:{i // 60:02d}:{i % 60:02d}Z",
             "text": f"message {i}"}
            for i in range(30)
        ]  # fmt: skip
        yield api


def _env() -> dict[str, str]:
    return clean_env(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )


def _driver(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.sources.ratelimit_driver", json.dumps(spec)],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 60) -> list[str]:
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out
        outputs.append(out)
    return outputs


def test_gladly_reports_hold_two_at_once_and_ten_a_minute_across_processes(
    gladly: FakeGladly, backend: dict[str, Any]
) -> None:
    limit = gladly.limit("reports", "sessions", concurrent=2, per_window=10, window=MINUTE,
                         hold=0.15)  # fmt: skip
    spec = {"source": "gladly", "url": gladly.url, "minute": MINUTE, "extracts": 5, **backend}
    outputs = _finish([_driver({**spec, "first_day": 10 * i}) for i in range(3)])
    assert [json.loads(o.splitlines()[-1])["rows"] for o in outputs] == [10] * 3
    assert len(limit.arrivals) == 15
    assert limit.rejected == 0, limit.why
    assert limit.peak_concurrency <= 2
    assert limit.peak_per_window() <= 10
    # 15 reports at 10 a "minute": the budget, not luck, spread them out
    assert max(limit.arrivals) - min(limit.arrivals) >= MINUTE


def test_without_the_shared_limiter_the_fake_sees_the_limit_broken(
    gladly: FakeGladly, tmp_path: Path
) -> None:
    """The control: each process's own limiter alone lets four processes go over."""
    limit = gladly.limit("reports", concurrent=2, per_window=10, window=MINUTE, hold=0.3)
    spec = {
        "source": "gladly", "url": gladly.url, "minute": MINUTE, "extracts": 3, "shared": False,
        "store": {"type": "local", "root": str(tmp_path / "objects")}, "bucket": "stage",
    }  # fmt: skip
    procs = [_driver({**spec, "first_day": 10 * i}) for i in range(4)]
    for proc in procs:
        proc.communicate(timeout=60)
    assert limit.rejected > 0 and limit.peak_concurrency > 2


def test_sprout_holds_sixty_a_minute_across_processes(
    sprout: FakeSprout, backend: dict[str, Any]
) -> None:
    minute = 1.0
    limit = sprout.limit("messages", per_window=60, window=minute)
    spec = {"source": "sprout", "url": sprout.url, "customer": CUSTOMER, "minute": minute,
            "extracts": 1, "page_size": 1, **backend}  # fmt: skip
    outputs = _finish([_driver(spec) for _ in range(3)])
    assert [json.loads(o.splitlines()[-1])["rows"] for o in outputs] == [30] * 3
    assert len(limit.arrivals) == 90  # a page per message
    assert limit.rejected == 0, limit.why
    assert limit.peak_per_window() <= 60
    assert max(limit.arrivals) - min(limit.arrivals) >= minute


def test_a_killed_holders_leases_are_taken_over_when_stale(
    gladly: FakeGladly, backend: dict[str, Any]
) -> None:
    """A holder renews its leases past their length; SIGKILLed, they are taken over."""
    limit = gladly.limit("reports", concurrent=2, per_window=10, window=MINUTE)
    spec = {"source": "gladly", "url": gladly.url, "minute": MINUTE,
            "rate_limit": {"lease_seconds": 1}, **backend}  # fmt: skip
    holder = _driver({**spec, "hold": 2, "extracts": 0})
    assert holder.stdout is not None
    for line in holder.stdout:
        if line.strip() == "HELD":
            break
    else:
        pytest.fail(f"the holder never took its leases (exit {holder.wait()})")
    waiter = _driver({**spec, "extracts": 1})
    time.sleep(2.0)  # twice the lease length: only renewals keep the holder's leases alive
    assert limit.arrivals == [] and waiter.poll() is None
    killed_at = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    (out,) = _finish([waiter])
    assert len(limit.arrivals) == 1 and limit.arrivals[0] > killed_at
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    takeover = [e for e in events if e.get("event") == "took over stale rate-limit leases"]
    assert takeover and all(f":{holder.pid}:" in owner for owner in takeover[0]["owners"])
    assert len(takeover[0]["owners"]) == 2


def test_xoelt_extract_processes_share_the_limit_through_the_local_target(
    gladly: FakeGladly, tmp_path: Path
) -> None:
    """The CLI wiring: the extract stage, XOELT_RATE_LIMIT_MINUTE_SECONDS, a YAML override."""
    limit = gladly.limit("reports", concurrent=2, per_window=2, window=MINUTE, hold=0.3)
    pipeline = {
        "dag": {
            "domain": "test", "pipeline_name": "g", "schedule": "0 6 * * *",
            "time_window": {"refresh_type": "daily", "lag": {"days": 1}, "timezone": "UTC"},
        },
        "globals": {"snowflake": {"database": "TEST_DB"}},
        "sources": {"src": {
            "source_type": "gladly_api", "load_strategy": "full_refresh",
            "snowflake": {"target_table": "T_SRC"},
            "extractor": {"base_url": gladly.url, "metric_set": "ContactTimestampsReport",
                          "rate_limit": {"per_minute": 2}},
        }},
    }  # fmt: skip
    (tmp_path / "pipelines" / "test").mkdir(parents=True)
    (tmp_path / "pipelines" / "test" / "g.yaml").write_text(yaml.safe_dump(pipeline))
    env = clean_env(
        XOELT_HOME=str(tmp_path / "home"),
        XOELT_RATE_LIMIT_MINUTE_SECONDS=str(MINUTE),
        GLADLY_API_USER=USER,
        GLADLY_API_TOKEN=TOKEN,
    )
    command = [sys.executable, "-m", "xoelt", "--log-format", "json", "extract", "test/g"]
    procs = [
        subprocess.Popen(
            [*command, "--date", f"2026-11-0{day}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in (3, 4, 5)
    ]
    _finish(procs)
    assert len(limit.arrivals) == 3
    assert limit.rejected == 0, limit.why
    assert limit.peak_concurrency <= 2 and limit.peak_per_window() <= 2
    assert max(limit.arrivals) - min(limit.arrivals) >= MINUTE  # the third waited
    host = gladly.url.removeprefix("http://").replace(":", "_")
    state = tmp_path / "home/objects/xoelt-stage/ratelimits/gladly-reports" / f"{host}.json"
    assert json.loads(state.read_text())["leases"] == {}


def test_s3_update_is_atomic_across_writers(
    s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conditional PUTs: four writers, every increment kept (lost races are retried).

    moto runs in this process, so its object lookup is slowed by 1 ms to widen the window
    between a writer's read and its conditional PUT: races are then certain, not rare, and a
    fake that checked ``If-Match`` and wrote in two steps would lose increments here
    (:mod:`tests.fakes.moto_s3` makes moto's per-key requests atomic, as S3's are).
    """
    import threading

    from moto.s3.models import S3Backend

    from xoelt.storage.s3 import S3ObjectStore

    lookup = S3Backend.get_object

    def slow_lookup(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = lookup(self, *args, **kwargs)
        time.sleep(0.001)
        return found

    monkeypatch.setattr(S3Backend, "get_object", slow_lookup)
    bucket = f"stage-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket)

    def bump(current: bytes | None) -> tuple[bytes, None]:
        return str(int(current or b"0") + 1).encode(), None

    failures: list[BaseException] = []

    def worker() -> None:
        store = S3ObjectStore(client=s3_client)
        try:
            for _ in range(15):
                store.update(bucket, "n.txt", bump)
        except BaseException as exc:  # a worker's error fails the test, not just its count
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert s3_client.get_object(Bucket=bucket, Key="n.txt")["Body"].read() == b"60"
