"""Sending an alert to one channel, every call bounded and retried a little.

HTTP channels (Slack, Teams, a webhook) POST JSON with httpx: connect and read timeouts of
the channel's ``timeout_seconds``, no redirects followed, up to ``max_attempts`` attempts on
429, 5xx and connection faults (exponential backoff with jitter, ``Retry-After`` honoured up
to :data:`MAX_WAIT` seconds). E-mail goes through smtplib with the same timeout on every
socket operation, STARTTLS before any credential, and retries on 4xx replies and dropped
connections. Anything else fails at once. Failures are raised as :class:`ChannelFailed`
with a one-line, redacted message that never holds the URL or a password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xoelt.alerts.message import Alert, email_message, slack_body, teams_body, webhook_body
from xoelt.config.alerts import EmailChannel, SlackChannel, TeamsChannel, WebhookChannel
from xoelt.redact import redact

if TYPE_CHECKING:
    from tenacity import RetryCallState

MAX_WAIT = 10.0  # seconds: an alert is not worth waiting longer between attempts

AnyChannel = SlackChannel | WebhookChannel | TeamsChannel | EmailChannel


class ChannelFailed(Exception):
    """A channel could not be reached or refused the message; ``transient`` if worth a retry."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(redact(message))
        self.transient = transient
        self.retry_after = retry_after


def send(channel: AnyChannel, alert: Alert) -> None:
    """Deliver ``alert`` to ``channel``; ChannelFailed (or a ConfigError for an unset
    ``${VAR}``) when it cannot."""
    if isinstance(channel, EmailChannel):
        _retrying(channel.max_attempts, lambda: _smtp(channel, alert))
        return
    body = {
        "slack": slack_body,
        "teams": teams_body,
        "webhook": webhook_body,
    }[channel.type](alert)
    url = channel.url.resolve().get_secret_value()  # registered for redaction on resolve
    if not url.startswith(("https://", "http://")):
        raise ChannelFailed(f"${{{channel.url.var}}} is not an http(s) URL", transient=False)
    _post(channel, url, body)


def _wait(state: RetryCallState) -> float:
    """Retry-After when the server sent one (capped), else 0.5, 1, 2 … s with full jitter."""
    import random

    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ChannelFailed) and exc.retry_after is not None:
        return min(max(exc.retry_after, 0.0), MAX_WAIT)
    return random.uniform(0, min(MAX_WAIT, 0.5 * 2 ** (state.attempt_number - 1)))


def _retrying(attempts: int, call: Callable[[], None]) -> None:
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, ChannelFailed) and e.transient),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        reraise=True,
    )
    retrying(call)


def _post(channel: AnyChannel, url: str, body: dict[str, Any]) -> None:
    import httpx

    timeout = httpx.Timeout(channel.timeout_seconds, connect=min(channel.timeout_seconds, 10.0))
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:

        def attempt() -> None:
            try:
                answer = client.post(url, json=body)
            except httpx.TimeoutException as exc:
                raise ChannelFailed(
                    f"no answer within {channel.timeout_seconds:g} s ({type(exc).__name__})",
                    transient=True,
                ) from exc
            except httpx.TransportError as exc:
                raise ChannelFailed(f"{type(exc).__name__}: {exc}", transient=True) from exc
            status = answer.status_code
            if status == 429 or status >= 500:
                raise ChannelFailed(
                    f"HTTP {status}", transient=True, retry_after=_retry_after(answer)
                )
            if status >= 300:
                detail = answer.text.strip().splitlines()[0][:200] if answer.text.strip() else ""
                raise ChannelFailed(f"HTTP {status} {detail}".strip(), transient=False)

        _retrying(channel.max_attempts, attempt)


def _retry_after(answer: Any) -> float | None:
    value = answer.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _smtp(channel: EmailChannel, alert: Alert) -> None:
    import smtplib
    import ssl

    msg = email_message(alert, channel.from_, channel.to, channel.subject_prefix)
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_seconds) as smtp:
            smtp.ehlo()
            if channel.starttls:
                context = ssl.create_default_context(cafile=channel.ca_file)
                smtp.starttls(context=context)
                smtp.ehlo()
            if channel.user is not None and channel.password is not None:
                smtp.login(
                    channel.user.resolve().get_secret_value(),
                    channel.password.resolve().get_secret_value(),
                )
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as exc:  # the server said no: 4xx is temporary
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise ChannelFailed(
            f"SMTP {exc.smtp_code} {text}".strip()[:300], transient=400 <= exc.smtp_code < 500
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise ChannelFailed(f"SMTP server disconnected: {exc}", transient=True) from exc
    except smtplib.SMTPException as exc:  # refused recipients, no STARTTLS offered…
        raise ChannelFailed(f"{type(exc).__name__}: {exc}"[:300], transient=False) from exc
    except ssl.SSLError as exc:  # a certificate that does not verify will not next time
        raise ChannelFailed(f"TLS: {exc}"[:300], transient=False) from exc
    except TimeoutError as exc:
        raise ChannelFailed(
            f"no answer within {channel.timeout_seconds:g} s", transient=True
        ) from exc
    except OSError as exc:  # refused, reset, unreachable
        raise ChannelFailed(f"{type(exc).__name__}: {exc}", transient=True) from exc
