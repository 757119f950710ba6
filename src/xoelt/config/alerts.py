"""The ``alerts:`` block: where a run's outcome is announced, and which outcomes are.

It sits in a target (``targets.yaml``: the default for every pipeline run there) or in a
pipeline's ``globals`` (which then replaces the target's block for that pipeline;
``alerts: {channels: []}`` silences a pipeline). Each channel is chosen by ``type``:

- ``slack``: a Slack-compatible incoming webhook (``text`` plus Block Kit ``blocks``);
- ``webhook``: any HTTP endpoint, a JSON body with every field of the alert;
- ``teams``: a Microsoft Teams Workflows webhook (an Adaptive Card message);
- ``email``: SMTP with STARTTLS, ``user``/``password`` as ``${VAR}`` references.

Webhook URLs carry their own credential (Slack's and Teams' URLs are bearer tokens), so they
are ``${VAR}`` references too, resolved only when a message is sent. These are plain models:
sending lives in :mod:`xoelt.alerts`, imported only when a run has something to send.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from xoelt.config.types import Secret, StrictModel

Event = Literal["run_failed", "test_warned", "test_failed", "recovered", "watchdog_miss"]
EVENTS: tuple[Event, ...] = (
    "run_failed",
    "test_warned",
    "test_failed",
    "recovered",
    "watchdog_miss",
)
DEFAULT_EVENTS: tuple[Event, ...] = ("run_failed", "test_failed", "recovered", "watchdog_miss")


class _Channel(StrictModel):
    """What every channel has: a name for logs, its events, and bounds on each call."""

    name: str | None = None
    events: list[Event] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    max_attempts: int = Field(3, ge=1, le=10)

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: list[Event]) -> list[Event]:
        if not value:
            raise ValueError("a channel needs at least one event (or remove the channel)")
        return list(dict.fromkeys(value))

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "channel"))


class SlackChannel(_Channel):
    type: Literal["slack"]
    url: Secret


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: Secret


class TeamsChannel(_Channel):
    type: Literal["teams"]
    url: Secret


class EmailChannel(_Channel):
    """SMTP submission: STARTTLS (unless ``starttls: false``, for a relay on localhost only),
    then AUTH when ``user`` is set. ``ca_file`` trusts a private CA (an internal relay)."""

    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    user: Secret | None = None
    password: Secret | None = None
    starttls: bool = True
    ca_file: str | None = None
    subject_prefix: str = "[xoelt]"

    @model_validator(mode="after")
    def _credentials(self) -> EmailChannel:
        if (self.user is None) != (self.password is None):
            raise ValueError("email needs both user and password, or neither")
        if self.user is not None and not self.starttls:
            raise ValueError("a password is only sent over STARTTLS (starttls: true)")
        return self


Channel = Annotated[
    SlackChannel | WebhookChannel | TeamsChannel | EmailChannel, Field(discriminator="type")
]


class AlertsConfig(StrictModel):
    """The channels a run's outcome goes to (each with its own ``events``)."""

    channels: list[Channel] = Field(default_factory=list)


def effective_alerts(
    pipeline_alerts: AlertsConfig | None, target_alerts: AlertsConfig | None
) -> AlertsConfig:
    """The pipeline's block if it has one, else the target's, else none."""
    return pipeline_alerts or target_alerts or AlertsConfig()
