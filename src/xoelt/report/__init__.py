"""The run-history report (``xoelt report``): one self-contained HTML page from the ledger
and data-test results. :func:`write_report` is the core function the CLI calls."""

from xoelt.report.build import ReportResult, write_report

__all__ = ["ReportResult", "write_report"]
