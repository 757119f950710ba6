"""One alert and the four shapes it is sent in (Slack, Teams, a generic webhook, e-mail).

An :class:`Alert` is built once per run (or per watchdog miss) and rendered per channel
with that channel's headline event. Every text in every rendering goes through
:func:`~xoelt.redact.redact` on the way out, whatever it was built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from email.message import EmailMessage
from typing import Any

from xoelt.config.alerts import Event
from xoelt.redact import redact

# Most urgent first: a channel's headline is the first of these it subscribes to.
PRIORITY: tuple[Event, ...] = (
    "run_failed",
    "watchdog_miss",
    "test_failed",
    "test_warned",
    "recovered",
)
HEADLINES: dict[str, str] = {
    "run_failed": "run failed",
    "watchdog_miss": "no successful run within the deadline",
    "test_failed": "data test failed",
    "test_warned": "data test warning",
    "recovered": "recovered",
}
_COLOR = {"recovered": "good", "test_warned": "warning"}  # Adaptive Card colours; else attention


@dataclass(frozen=True)
class Alert:
    """What happened to one run (or one watched window), as data.

    ``events`` are every event the outcome raised; ``event`` is the one a rendering leads
    with (see :meth:`for_channel`). ``rows`` are rows per layer (bronze, silver, gold) of
    the layers the run reached; ``tests`` one line per data test that did not pass.
    """

    events: tuple[Event, ...]
    pipeline: str
    window: str
    target: str
    command: str
    status: str  # succeeded | failed | missed
    event: Event | None = None
    run_id: str | None = None
    stage: str | None = None
    source: str | None = None
    error: str = ""
    rows: Mapping[str, int] = field(default_factory=dict)
    tests: tuple[str, ...] = ()
    scheduled_at: str | None = None

    def for_channel(self, wanted: list[Event]) -> Alert | None:
        """This alert led by the most urgent event ``wanted`` has, or None if it has none."""
        for event in PRIORITY:
            if event in self.events and event in wanted:
                return replace(self, event=event)
        return None

    @property
    def headline(self) -> str:
        return HEADLINES.get(self.event or self.events[0], "xoelt")

    @property
    def title(self) -> str:
        return f"xoelt {self.headline}: {self.pipeline} {self.window}"

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) pairs in display order, empty values left out."""
        pairs = [
            ("Pipeline", self.pipeline),
            ("Window", self.window),
            ("Scheduled at", self.scheduled_at or ""),
            ("Target", self.target),
            ("Status", self.status),
            ("Stage", self.stage or ""),
            ("Source", self.source or ""),
            ("Rows", ", ".join(f"{k} {v:,}" for k, v in self.rows.items())),
            ("Run id", self.run_id or ""),
        ]
        return [(k, v) for k, v in pairs if v]

    def summary(self) -> str:
        """One line: the title, and the error if there is one."""
        return f"{self.title}: {self.error}" if self.error else self.title

    def text_lines(self) -> list[str]:
        """The plain-text body (e-mail): facts, error, tests, the command to reproduce."""
        lines = [self.title, ""]
        lines += [f"{k + ':':<14}{v}" for k, v in self.facts()]
        if self.error:
            lines += ["", "Error:", f"  {self.error}"]
        if self.tests:
            lines += ["", "Data tests:", *(f"  {t}" for t in self.tests)]
        lines += ["", "Reproduce:", f"  {self.command}"]
        return lines


def _clean(value: Any) -> Any:
    """Every string in a JSON-able tree, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def webhook_body(alert: Alert) -> dict[str, Any]:
    """The generic JSON body: every field, plus ``title`` and ``text``."""
    body = asdict(alert)
    body["events"] = list(alert.events)
    body["tests"] = list(alert.tests)
    body["rows"] = dict(alert.rows)
    body["title"] = alert.title
    body["text"] = alert.summary()
    return _clean(body)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_body(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications, fallbacks) and Block Kit
    ``blocks`` (a header, the facts as fields, the error, the tests, the command)."""
    fields = [{"type": "mrkdwn", "text": _cut(f"*{k}*\n{v}", 2000)} for k, v in alert.facts()]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(alert.title, 150)}},
        {"type": "section", "fields": fields[:10]},
    ]
    if alert.error:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(f"```{alert.error}```", 3000)},
            }
        )
    if alert.tests:
        text = "\n".join(f"• {t}" for t in alert.tests)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _cut(f"Reproduce: `{alert.command}`", 3000)}],
        }
    )
    return _clean({"text": _cut(alert.summary(), 3000), "blocks": blocks})


def teams_body(alert: Alert) -> dict[str, Any]:
    """A Teams Workflows webhook message: one Adaptive Card (1.4) attachment."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": alert.title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": {"good": "Good", "warning": "Warning"}.get(
                _COLOR.get(alert.event or "", ""), "Attention"
            ),
        },
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in alert.facts()]},
    ]
    if alert.error:
        body.append(
            {"type": "TextBlock", "text": alert.error, "wrap": True, "fontType": "Monospace"}
        )
    for test in alert.tests:
        body.append({"type": "TextBlock", "text": f"- {test}", "wrap": True, "spacing": "None"})
    body.append(
        {"type": "TextBlock", "text": f"Reproduce: {alert.command}", "wrap": True, "isSubtle": True}
    )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    return _clean(
        {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
    )


def email_message(alert: Alert, sender: str, to: list[str], prefix: str) -> EmailMessage:
    """A plain-text e-mail of the alert."""
    msg = EmailMessage()
    msg["Subject"] = redact(_cut(f"{prefix} {alert.summary()}".strip(), 250))
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg.set_content(redact("\n".join(alert.text_lines())) + "\n")
    return msg
