"""One exception hierarchy for xoelt: adapters say *what* went wrong, the orchestrator *where*.

    XoeltError                      root; carries an exit code and a one-line message
    ├── InputError       (exit 2)   bad arguments or configuration
    │   └── ConfigError             names the file, line and key
    ├── RunError         (exit 1)   something failed at run time (what, by kind)
    │   ├── SourceError             an API or upload answered badly (transient: 429, 5xx, resets)
    │   ├── StorageError            the object store failed (missing object, unreadable key…)
    │   ├── WarehouseError          the warehouse failed (SQL error, connection, lock)
    │   ├── DataError               the data does not reconcile (row counts, headers, keys)
    │   │   └── DataTestFailed          a data test of severity error failed
    │   └── LockHeld                another run holds this pipeline/source/window
    └── StageFailed      (exit 1)   where: stage, source and window, around the RunError

Adapters map vendor exceptions once, at their boundary, with ``raise … from exc`` so that
``--debug`` shows the whole chain. ``transient`` marks faults worth retrying; everything else
is terminal. :func:`xoelt.core.execute` wraps any failure of a stage in exactly one
:class:`StageFailed`; the CLI is the only place that turns errors into messages and exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence

from xoelt.findings import Finding
from xoelt.redact import redact


class XoeltError(Exception):
    """Root of every error xoelt expects; ``str(err)`` is the one-line human message.

    ``findings`` are what the failing code noticed about the data (e.g. the column that
    vanished, the values that did not convert); the ledger keeps them with the failure.
    """

    exit_code = 1
    transient = False
    findings: tuple[Finding, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        transient: bool | None = None,
        findings: Sequence[Finding] = (),
    ) -> None:
        message = redact(message)  # an API may echo a credential into an error body
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient
        if findings:
            self.findings = tuple(findings)

    def __str__(self) -> str:
        return self.message

    def prefixed(self, before: str, after: str = "") -> XoeltError:
        """A copy of this error (same class, same ``transient``) with context around its
        message; raise it ``from`` this one."""
        # Not copy.copy: that rebuilds the error as cls(*args), which subclasses with their
        # own constructors (StageFailed, PipelineInvalid) refuse.
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.message = redact(f"{before}{self.message}{after}")
        clone.args = (clone.message,)
        return clone


class InputError(XoeltError):
    """Bad input from the user: arguments, paths, dates. Exit code 2."""

    exit_code = 2


class ConfigError(InputError):
    """A pipeline or target file is invalid; the message names file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file, self.line, self.key, self.detail = file, line, key, message
        where = ""
        if file:
            where = f"{file}:{line}" if line else file
        prefix = f"{where} {key}: " if key and where else f"{where}: " if where else ""
        super().__init__(f"{prefix}{message}")


class RunError(XoeltError):
    """Something failed at run time. Exit code 1. ``detail`` is the message itself."""

    @property
    def detail(self) -> str:
        return self.message


class SourceError(RunError):
    """A source (an API, an upload bucket) answered with something unusable."""


class StorageError(RunError):
    """The object store failed: a missing object, an unwritable location, a refused request."""


class WarehouseError(RunError):
    """The warehouse failed: a SQL error, a lost connection, a file that cannot be opened."""


class DataError(RunError):
    """The data does not reconcile: row counts, headers or keys are not what they must be."""


class DataTestFailed(DataError):
    """A data test of severity ``error`` failed; the message names the test and the table,
    the findings (kind ``data_test``) hold every test that did not pass."""


class LockHeld(RunError):
    """Another run holds the lock; the message names the owner and since when."""


class StageFailed(XoeltError):
    """A stage failed: *where* (stage, source, window) around *what* (the cause's message).

    The cause is kept as ``__cause__`` (``raise StageFailed(...) from cause``) and as
    ``cause``; ``transient`` and ``exit_code`` are the cause's.
    """

    def __init__(
        self, stage: str, cause: BaseException, *, source: str | None, window: str | None
    ) -> None:
        self.stage, self.source, self.window, self.cause = stage, source, window, cause
        findings: tuple[Finding, ...] = ()
        if isinstance(cause, XoeltError):
            detail = cause.message
            self.exit_code = cause.exit_code
            transient: bool | None = cause.transient
            findings = cause.findings
        else:
            detail = f"{type(cause).__name__}: {cause}"
            transient = False
        self.detail = detail
        parts = [f"{stage} failed"]
        if source:
            parts.append(f"source={source}")
        if window:
            parts.append(f"window={window}")
        super().__init__(f"{' '.join(parts)}: {detail}", transient=transient, findings=findings)
