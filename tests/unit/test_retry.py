"""Whole-operation retries: only transient errors, bounded attempts."""

from __future__ import annotations

import pytest

from xoelt.errors import WarehouseError
from xoelt.retry import retry_transient


def flaky(failures: list[WarehouseError]):  # type: ignore[no-untyped-def]
    calls = []

    def operation() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    return operation, calls


def test_transient_errors_are_retried() -> None:
    op, calls = flaky(
        [WarehouseError("network", transient=True), WarehouseError("503", transient=True)]
    )
    assert retry_transient(op, what="load", sleep=lambda _s: None) == "ok"
    assert len(calls) == 3


def test_terminal_errors_are_not() -> None:
    op, calls = flaky([WarehouseError("row count mismatch")])
    with pytest.raises(WarehouseError, match="mismatch"):
        retry_transient(op, what="load", sleep=lambda _s: None)
    assert len(calls) == 1


def test_attempts_are_bounded() -> None:
    op, calls = flaky([WarehouseError("down", transient=True)] * 5)
    with pytest.raises(WarehouseError, match="down"):
        retry_transient(op, what="load", attempts=3, sleep=lambda _s: None)
    assert len(calls) == 3
