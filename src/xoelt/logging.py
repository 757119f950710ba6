"""structlog set-up: JSON lines off a TTY (Kubernetes collectors), a readable console on one.

Every line from a run carries ``pipeline``, ``source``, ``run_id`` and ``window`` (bound by the
runner). Logs go to stderr; stdout is for command output (plans, tables, JSON).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_CONFIGURED = False


def configure(*, debug: bool = False, json: bool | None = None) -> None:
    """Configure structlog once per process; ``json`` defaults to "stderr is not a TTY"."""
    global _CONFIGURED
    as_json = (not sys.stderr.isatty()) if json is None else json
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=True)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if debug else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _CONFIGURED = True


def get_logger(**bound: Any) -> Any:
    if not _CONFIGURED:
        configure()
    return structlog.get_logger("xoelt").bind(**bound)
