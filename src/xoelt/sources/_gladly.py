"""Gladly's ``extractor:`` model and the interface of its kinds (see :mod:`xoelt.sources.gladly`).

Below both the source (``gladly.py``) and the conversation-export kind (``_gladly_export.py``),
so each kind can live in the module that suits it without an import cycle.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from xoelt.config.types import Secret, StrictModel
from xoelt.sources.base import CsvSink, ExtractContext
from xoelt.sources.http import HttpClient, RetryConfig
from xoelt.sources.ratelimit import RateLimits
from xoelt.timewindow import TimeWindow

DEFAULT_BASE_URL = "https://us-1.gladly.com"
USER_VAR, TOKEN_VAR = "GLADLY_API_USER", "GLADLY_API_TOKEN"
REPORTS_PATH = "/api/v1/reports"
WORK_SESSIONS_PATH = "/api/v1/reports/work-session-events"
JOBS_PATH = "/api/v1/export/jobs"
# The metric sets that take startAtTime/endAtTime (any instant); every other one takes whole
# days only (startAt/endAt dates), so it cannot serve an intraday window (api-contracts.md).
TIMED_METRIC_SETS = frozenset({"AgentSummaryReport", "ContactExportReportV3"})


class GladlyFilters(StrictModel):
    """The report ``filters`` object, sent with Gladly's key names."""

    channel: str | None = None
    inboxes: list[str] | None = None
    teams: list[str] | None = None
    phone_number: str | None = Field(None, alias="phoneNumber")


class GladlyConfig(StrictModel):
    """The ``extractor:`` block of a ``gladly_api`` source."""

    kind: Literal["report", "work_session_events", "conversation_export"] = "report"
    metric_set: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    filters: GladlyFilters | None = None
    aggregation_level: Literal["halfHourly", "daily", "weekly", "monthly", "quarterly"] | None = (
        None
    )
    export_file: str = Field(
        "conversation_items.jsonl", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.jsonl$"
    )
    time_field: str | None = "timestamp"
    # Export items inside the window that the job supplying them holds outside its own
    # segment, and that no chosen job supplies inside its segment: more than this fails.
    max_outside_segment: int = Field(0, ge=0)
    org: str | None = Field(None, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    base_url: str | None = None
    user: Secret | None = None
    token: Secret | None = None
    retry: RetryConfig = RetryConfig()
    # Fields set here replace the kind's documented limits (GladlyKind.LIMITS).
    rate_limit: RateLimits | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/").removesuffix("/api/v1")

    @field_validator("metric_set")
    @classmethod
    def _whole_days_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        window = (info.context or {}).get("time_window")
        refresh = getattr(window, "refresh_type", "daily")
        if value is None or refresh == "daily" or value in TIMED_METRIC_SETS:
            return value
        timed = ", ".join(sorted(TIMED_METRIC_SETS))
        raise ValueError(
            f"{value} takes whole days only (startAt/endAt), so every {refresh} window would "
            f"get its whole day(s); use refresh_type: daily, or a metric set that takes times "
            f"({timed})"
        )

    @field_validator("export_file")
    @classmethod
    def _file(cls, value: str) -> str:
        if ".." in value:
            raise ValueError(
                "export_file must be a plain file name such as conversation_items.jsonl"
            )
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> GladlyConfig:
        if self.kind == "report" and not self.metric_set:
            raise ValueError("kind report needs metric_set (e.g. ContactTimestampsReport)")
        only = {
            "metric_set": "report",
            "filters": "report",
            "aggregation_level": "report",
            "export_file": "conversation_export",
            "time_field": "conversation_export",
            "max_outside_segment": "conversation_export",
        }
        for key, kind in only.items():
            if key in self.model_fields_set and self.kind != kind:
                raise ValueError(f"{key} applies only to kind {kind} (this source is {self.kind})")
        if self.org and self.base_url:
            raise ValueError("set either org or base_url, not both")
        return self

    @property
    def url(self) -> str:
        """The API root (no ``/api/v1``)."""
        if self.base_url:
            return self.base_url
        return f"https://{self.org}.gladly.com" if self.org else DEFAULT_BASE_URL


class GladlyKind(ABC):
    """One ``kind`` of Gladly extraction: what ``plan`` shows, its rate limit, its rows.

    :class:`~xoelt.sources.gladly.GladlySource` picks the kind from ``KINDS`` by
    ``config.kind`` and owns what every kind shares (credentials, client, redaction).
    ``API`` names the endpoints' limit (shared per org host) and ``LIMITS`` is Gladly's
    documented limit for them, which the source's ``rate_limit:`` block may override.
    """

    API: ClassVar[str]
    LIMITS: ClassVar[RateLimits]

    def __init__(self, config: GladlyConfig) -> None:
        self.config = config

    def limits(self) -> RateLimits:
        """The documented limits with the configured ``rate_limit:`` fields over them."""
        return self.LIMITS.merged(self.config.rate_limit)

    @abstractmethod
    def describe(self, window: TimeWindow) -> dict[str, Any]:
        """The request(s) ``plan`` shows for this window (method, url, body…)."""

    @abstractmethod
    def extract(self, client: HttpClient, ctx: ExtractContext, sink: CsvSink) -> None:
        """Fetch the window's rows through ``client`` into ``sink`` (and its details)."""
