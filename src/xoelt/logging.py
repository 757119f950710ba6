"""structlog set-up: JSON lines off a TTY (Kubernetes collectors), a readable console on one.

Every line from a run carries ``pipeline``, ``source``, ``run_id`` and ``window`` (bound by the
runner). Logs go to stderr; stdout is for command output (plans, tables, JSON).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from xoelt.redact import redact

_SETTINGS: dict[str, Any] = {"debug": False, "json": None}
_CONFIGURED = False


def configure(*, debug: bool = False, json: bool | None = None) -> None:
    """Record the log settings; structlog itself is set up on the first log line.

    Importing structlog costs ~150 ms, which ``plan`` and ``--help`` never need.
    """
    global _CONFIGURED
    _SETTINGS.update(debug=debug, json=json)
    _CONFIGURED = False


def json_mode() -> bool:
    """Whether log lines are JSON: asked for (``--log-format json``), or stderr is no TTY."""
    json = _SETTINGS["json"]
    return (not sys.stderr.isatty()) if json is None else bool(json)


def _setup() -> None:
    global _CONFIGURED
    import structlog

    debug = _SETTINGS["debug"]
    as_json = json_mode()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors += [structlog.processors.dict_tracebacks, _redacted]
        processors += [structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.processors.format_exc_info, _redacted]
        processors += [structlog.dev.ConsoleRenderer(colors=True)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _CONFIGURED = True


def _redacted(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Mask secrets in every value of a log line (see :mod:`xoelt.redact`)."""
    return {key: _mask(value) for key, value in event.items()}


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def get_logger(**bound: Any) -> Any:
    """A structlog logger with ``bound`` context (pipeline, source, run_id, window)."""
    import structlog

    if not _CONFIGURED:
        _setup()
    return structlog.get_logger("xoelt").bind(**bound)
