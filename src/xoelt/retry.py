"""Retrying warehouse and store operations that failed for a transient reason.

HTTP sources retry inside :mod:`xoelt.sources.http`; this is for whole operations that are
safe to repeat because they are atomic (a bronze load that rolled back, a connection).
Only errors marked ``transient`` (network faults, Snowflake's retryable answers) are retried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from xoelt.errors import XoeltError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, XoeltError) and exc.transient


def retry_transient(
    operation: Callable[[], T],
    *,
    what: str,
    log: Any = None,
    attempts: int = 3,
    max_wait: float = 30.0,
    budget: float | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``operation``; on a transient XoeltError wait (exponential, jittered) and retry.

    With ``budget`` (seconds), no retry starts (its wait included) once that long has passed
    since the first attempt began.
    """
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        stop_before_delay,
        stop_never,
        wait_random_exponential,
    )

    def before_sleep(state: Any) -> None:
        if log is not None and state.outcome is not None:
            log.warning(
                "retrying",
                operation=what,
                attempt=state.attempt_number,
                error=str(state.outcome.exception()),
            )

    options: dict[str, Any] = {}
    if sleep is not None:
        options["sleep"] = sleep
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts)
        | (stop_never if budget is None else stop_before_delay(budget)),
        wait=wait_random_exponential(multiplier=1, max=max_wait),
        before_sleep=before_sleep,
        reraise=True,
        **options,
    )
    return retrying(operation)
