"""One exception hierarchy for xoelt.

    XoeltError                      root; carries an exit code and a one-line message
    ├── InputError       (exit 2)   bad arguments or configuration
    │   └── ConfigError             names the file, line and key
    └── RunError         (exit 1)   the run failed; names stage, source and window
        ├── ExtractError
        ├── StageError
        ├── LoadError
        └── TransformError

``transient`` marks faults worth retrying (429, 5xx, connection resets); everything else
is terminal. The CLI is the only place that turns these into messages and exit codes.
"""

from __future__ import annotations


class XoeltError(Exception):
    """Root of every error xoelt expects; ``str(err)`` is the one-line human message."""

    exit_code = 1
    transient = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message


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
    """A stage failed at run time. Exit code 1; the message names stage, source and window."""

    stage = "run"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        window: str | None = None,
        transient: bool | None = None,
    ) -> None:
        self.detail, self.source, self.window = message, source, window
        super().__init__(message, transient=transient)

    def locate(self, *, source: str | None, window: str | None) -> RunError:
        """Fill in the source and window if the raiser did not know them."""
        self.source = self.source or source
        self.window = self.window or window
        return self

    def __str__(self) -> str:
        parts = [f"{self.stage} failed"]
        if self.source:
            parts.append(f"source={self.source}")
        if self.window:
            parts.append(f"window={self.window}")
        return f"{' '.join(parts)}: {self.detail}"


class ExtractError(RunError):
    stage = "extract"


class SourceError(RunError):
    """A source (an API, an upload bucket) answered with something unusable."""

    # Sources raise only during extract; until the orchestrator names the stage itself, this
    # keeps the message users see ("extract failed source=… window=…: …") unchanged.
    stage = "extract"


class StageError(RunError):
    stage = "stage"


class LoadError(RunError):
    stage = "load"


class TransformError(RunError):
    stage = "transform"
