"""A separate xoelt process for the cross-process rate-limit tests: the real limiter, the
real source code, the real object store (a directory or S3 on moto).

    python -m tests.integration.sources.ratelimit_driver '<json spec>'

The spec names the ``source`` (``gladly`` reports or ``sprout`` messages), the fake API's
``url``, the ``store`` (``{"type": "local", "root": ...}`` or ``{"type": "s3", "endpoint":
...}``), the ``bucket``, the scaled ``minute`` and what to do:

- ``extracts``: run that many extractions (Gladly: one report POST each, a window per day;
  Sprout: one window, every page), each through ``Source.extract`` with a
  :class:`~xoelt.sources.ratelimit.SharedLimits` in its context, as the extract stage does;
- ``shared: false``: the same without the shared limits (only this process's limiter);
- ``hold``: take that many Gladly report leases, print ``HELD``, and sleep (to be killed).

Log lines (JSON) go to stdout; the last line is ``{"done": <seconds>, "rows": <rows>}``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from xoelt.sources.base import CsvSink, ExtractContext, Source
from xoelt.sources.gladly import GladlySource, Report
from xoelt.sources.ratelimit import SharedLimits, limiter_for
from xoelt.sources.sprout_social import SproutSocialSource
from xoelt.storage.base import ObjectStore
from xoelt.timewindow import TimeWindow

ZONE = "America/New_York"
GLADLY_ENV = {"GLADLY_API_USER": "robot@example.com", "GLADLY_API_TOKEN": "gl-tok-driver"}
SPROUT_ENV = {"SPROUT_API_TOKEN": "sp-tok-driver"}
RETRY = {"max_attempts": 3, "initial_backoff": 0.05, "max_backoff": 0.2, "timeout_seconds": 20}


class Log:
    """A stand-in for the run's structlog logger: one JSON line per event on stdout."""

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        print(json.dumps({"level": level, "event": event, **fields}, default=str), flush=True)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, **fields)

    def bind(self, **_: Any) -> Log:
        return self


def _store(spec: dict[str, Any]) -> ObjectStore:
    if spec["type"] == "local":
        from xoelt.storage.local import LocalObjectStore

        return LocalObjectStore(Path(spec["root"]))
    from xoelt.storage.s3 import S3ObjectStore

    return S3ObjectStore(endpoint_url=spec["endpoint"], region="us-east-1")


def _window(day: int) -> TimeWindow:
    zone = ZoneInfo(ZONE)
    start = datetime(2026, 11, 1, tzinfo=zone) + timedelta(days=day)
    return TimeWindow("daily", start, start + timedelta(days=1), ZONE)


def _source(spec: dict[str, Any]) -> tuple[type[Source[Any]], Any, dict[str, str]]:
    extra = {"rate_limit": spec["rate_limit"]} if spec.get("rate_limit") else {}
    if spec["source"] == "gladly":
        block = {"base_url": spec["url"], "metric_set": "ContactTimestampsReport", "retry": RETRY}
        return GladlySource, GladlySource.Config.model_validate({**block, **extra}), GLADLY_ENV
    block = {
        "base_url": spec["url"],
        "customer_id": spec["customer"],
        "fields": ["guid", "created_time", "text"],
        "limit": spec.get("page_size", 1),
        "retry": RETRY,
    }
    return (
        SproutSocialSource,
        SproutSocialSource.Config.model_validate({**block, **extra}),
        SPROUT_ENV,
    )


def main(spec: dict[str, Any]) -> None:
    log = Log()
    shared = SharedLimits(_store(spec["store"]), spec["bucket"], minute=spec["minute"])
    cls, config, env = _source(spec)
    started = time.monotonic()
    if spec.get("hold"):
        host = urlsplit(spec["url"]).netloc.lower()
        limiter = limiter_for(shared, f"{Report.API}/{host}", Report(config).limits(), log)
        with ExitStack() as stack:
            for _ in range(spec["hold"]):
                stack.enter_context(limiter.slot())
            print("HELD", flush=True)
            time.sleep(600)
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(spec["extracts"]):
            day = spec.get("first_day", 0) + (i if spec["source"] == "gladly" else 0)
            workdir = Path(tmp) / str(i)
            workdir.mkdir()
            limits = shared if spec.get("shared", True) else None  # False: the old behaviour
            ctx = ExtractContext(
                "src", _window(day), f"run-{i}", shared.store, env, log, workdir, limits=limits
            )
            sink = CsvSink(workdir / "out.csv")
            try:
                cls(config, ctx).extract(sink)
            finally:
                sink.close()
            rows += sink.rows
    print(json.dumps({"done": round(time.monotonic() - started, 3), "rows": rows}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
