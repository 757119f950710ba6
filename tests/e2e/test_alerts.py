"""Alerts through the CLI: what Slack, Teams, a webhook and an SMTP relay receive for a
failed run, a recovery, and what happens when every channel is down (nothing changes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Project
from tests.fakes.alerts import AlertSink, free_port, smtp_relay
from tests.fakes.dead import failing_server, silent_server
from tests.fakes.server import serve

PIPE = "demo/gladly_demo"
DATE = "2026-11-03"
WINDOW = "[2026-11-02T00:00:00-05:00, 2026-11-03T00:00:00-05:00)"
TOKEN = "T0KEN-abc123-secret"
SMTP_PASSWORD = "relay-pass-9f8e7d"


def _targets(project: Project, channels: list[dict[str, Any]]) -> None:
    data = {"local": {"type": "local", "alerts": {"channels": channels}}}
    (project.root / "targets.yaml").write_text(yaml.safe_dump(data))


def _pipeline_alerts(project: Project, channels: list[dict[str, Any]]) -> None:
    path = project.root / "pipelines" / "demo" / "gladly_demo.yaml"
    data = yaml.safe_load(path.read_text())
    data["globals"]["alerts"] = {"channels": channels}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _error_line(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.startswith("error:")][-1]


def _warnings(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "alert not delivered":
                out.append(record)
    return out


def test_failed_run_reaches_slack_teams_webhook_and_email(project: Project, tmp_path: Path) -> None:
    baseline = project.xoelt("run", PIPE, "--date", DATE)  # no targets.yaml: no alerts
    with serve(AlertSink()) as sink, smtp_relay(tmp_path, "xoelt", SMTP_PASSWORD) as box:
        _targets(
            project,
            [
                {"type": "slack", "url": "${SLACK_URL}"},
                {"type": "teams", "url": "${TEAMS_URL}"},
                {"type": "webhook", "url": "${HOOK_URL}", "name": "ops-hook"},
                {
                    "type": "email",
                    "host": box.host,
                    "port": box.port,
                    "from": "xoelt@example.com",
                    "to": ["data-team@example.com", "oncall@example.com"],
                    "user": "${SMTP_USER}",
                    "password": "${SMTP_PASSWORD}",
                    "ca_file": str(box.ca_file),
                },
            ],
        )
        env = {
            "SLACK_URL": f"{sink.url}/slack/{TOKEN}",
            "TEAMS_URL": f"{sink.url}/teams/{TOKEN}",
            "HOOK_URL": f"{sink.url}/hook/{TOKEN}",
            "SMTP_USER": "xoelt",
            "SMTP_PASSWORD": SMTP_PASSWORD,
        }
        failed = project.xoelt("run", PIPE, "--date", DATE, env=env)

        assert failed.returncode == baseline.returncode == 1
        assert _error_line(failed.stderr) == _error_line(baseline.stderr)
        assert _warnings(failed.stderr) == []
        # one message per channel for the run
        (slack,) = sink.bodies("slack")
        (teams,) = sink.bodies("teams")
        (hook,) = sink.bodies("hook")
        assert len(box.messages) == 1

    reproduce = f"xoelt run {PIPE} --date {DATE}"
    assert slack["text"].startswith(f"xoelt run failed: {PIPE} {WINDOW}: no files matching")
    assert slack["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"xoelt run failed: {PIPE} {WINDOW}"},
    }
    fields = [f["text"] for f in slack["blocks"][1]["fields"]]
    assert "*Stage*\nextract" in fields and "*Source*\ncontact_timestamps" in fields
    assert slack["blocks"][-1]["elements"][0]["text"] == f"Reproduce: `{reproduce}`"

    (attachment,) = teams["attachments"]
    assert teams["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == f"xoelt run failed: {PIPE} {WINDOW}"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Stage"] == "extract" and facts["Window"] == WINDOW

    assert hook["event"] == "run_failed" and hook["events"] == ["run_failed"]
    assert (hook["pipeline"], hook["stage"], hook["source"]) == (
        PIPE,
        "extract",
        "contact_timestamps",
    )
    assert hook["status"] == "failed" and hook["command"] == reproduce
    assert hook["error"] in _error_line(failed.stderr)
    assert hook["rows"] == {}  # the run stopped at extract: no layer was reached

    mail = box.messages[0]
    assert box.logins == ["xoelt"]  # AUTH after STARTTLS (the relay refuses anything else)
    assert box.envelopes[0] == (
        "xoelt@example.com",
        ["data-team@example.com", "oncall@example.com"],
    )
    assert mail["Subject"].startswith(f"[xoelt] xoelt run failed: {PIPE}")
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert reproduce in text and "Stage:        extract" in text

    everything = json.dumps([slack, teams, hook]) + str(mail)
    assert TOKEN not in everything and SMTP_PASSWORD not in everything


def test_recovered_after_a_failure_with_rows_per_layer(project: Project) -> None:
    with serve(AlertSink()) as sink:
        _pipeline_alerts(project, [{"type": "webhook", "url": "${HOOK_URL}"}])
        env = {"HOOK_URL": f"{sink.url}/hook/{TOKEN}"}
        assert project.xoelt("run", PIPE, "--date", DATE, env=env).returncode == 1
        project.publish_demo_files()
        project.xoelt("run", PIPE, "--date", DATE, env=env, check=True)
        project.xoelt("run", PIPE, "--date", DATE, env=env, check=True)  # nothing to say
        failed, recovered = sink.bodies("hook")

    assert failed["event"] == "run_failed"
    assert recovered["event"] == "recovered" and recovered["status"] == "succeeded"
    assert recovered["error"] == "" and recovered["stage"] is None
    assert recovered["rows"]["bronze"] == 135 + 45 + 5
    assert set(recovered["rows"]) == {"bronze", "silver", "gold"}
    assert recovered["rows"]["gold"] > 0


def test_channels_that_are_down_change_nothing(project: Project) -> None:
    baseline = project.xoelt("run", PIPE, "--date", DATE)
    with silent_server() as (host, port), failing_server() as broken:
        channels = [
            {"type": "webhook", "url": "${REFUSED_URL}", "name": "refused"},
            {"type": "slack", "url": "${BROKEN_URL}", "name": "five-hundred", "max_attempts": 2},
            {"type": "teams", "url": "${HANG_URL}", "name": "hang", "timeout_seconds": 1,
             "max_attempts": 1},
            {"type": "email", "host": "127.0.0.1", "port": free_port(), "from": "x@example.com",
             "to": ["y@example.com"], "name": "no-relay", "timeout_seconds": 1, "max_attempts": 1},
        ]  # fmt: skip
        _targets(project, channels)
        env = {
            "REFUSED_URL": f"http://127.0.0.1:{free_port()}/hook",
            "BROKEN_URL": f"http://127.0.0.1:{broken.server_address[1]}/slack/{TOKEN}",
            "HANG_URL": f"http://{host}:{port}/teams/{TOKEN}",
        }
        failed = project.xoelt("run", PIPE, "--date", DATE, env=env)
        assert broken.hits == 2  # retried on 500, within max_attempts
        project.publish_demo_files()
        recovered = project.xoelt("run", PIPE, "--date", DATE, env=env)

    assert failed.returncode == baseline.returncode == 1
    assert _error_line(failed.stderr) == _error_line(baseline.stderr)
    warned = _warnings(failed.stderr)
    assert [w["channel"] for w in warned] == ["refused", "five-hundred", "hang", "no-relay"]
    assert all(w["alert_event"] == "run_failed" for w in warned)
    by_channel = {w["channel"]: w["error"] for w in warned}
    assert by_channel["five-hundred"] == "HTTP 500"
    assert by_channel["hang"].startswith("no answer within 1 s")
    assert "Connection refused" in by_channel["refused"]
    assert TOKEN not in failed.stderr
    # the recovery is announced to the same dead channels: the run still succeeds
    assert recovered.returncode == 0, recovered.stderr
    assert [w["alert_event"] for w in _warnings(recovered.stderr)] == ["recovered"] * 4
    assert not [line for line in recovered.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        (
            {"type": "email", "host": "h", "from": "a@b", "to": ["c@d"], "user": "u",
             "password": "literal-password"},
            "secrets must be ${VAR} references",
        ),
        ({"type": "webhook", "url": "${HOOK_URL}", "events": ["run_broke"]}, "'watchdog_miss'"),
        ({"type": "pager", "url": "${HOOK_URL}"}, "pager"),
    ],
)  # fmt: skip
def test_bad_alert_config_is_refused_naming_the_key(
    project: Project, channel: dict[str, Any], message: str
) -> None:
    _targets(project, [channel])
    done = project.xoelt("plan", PIPE, "--date", DATE)
    assert done.returncode == 2
    assert "targets.yaml" in done.stderr and "local.alerts.channels" in done.stderr
    assert message in done.stderr and "literal-password" not in done.stderr


def test_backfill_sends_one_message_per_window(project: Project) -> None:
    with serve(AlertSink()) as sink:
        _targets(project, [{"type": "webhook", "url": "${HOOK_URL}"}])
        env = {"HOOK_URL": f"{sink.url}/hook/{TOKEN}"}
        done = project.xoelt(
            "backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-04", "--keep-going",
            env=env,
        )  # fmt: skip
        bodies = sink.bodies("hook")
    assert done.returncode == 1
    assert [(b["event"], b["command"]) for b in bodies] == [
        ("run_failed", f"xoelt run {PIPE} --date 2026-11-03"),
        ("run_failed", f"xoelt run {PIPE} --date 2026-11-04"),
    ]


def test_relay_refusing_the_login_is_a_warning(project: Project, tmp_path: Path) -> None:
    baseline = project.xoelt("run", PIPE, "--date", DATE)
    with smtp_relay(tmp_path, "xoelt", SMTP_PASSWORD) as box:
        channel = {
            "type": "email", "host": box.host, "port": box.port, "from": "x@example.com",
            "to": ["y@example.com"], "user": "${SMTP_USER}", "password": "${SMTP_PASSWORD}",
            "ca_file": str(box.ca_file), "name": "relay",
        }  # fmt: skip
        _targets(project, [channel])
        env = {"SMTP_USER": "xoelt", "SMTP_PASSWORD": "wrong-password-123"}
        failed = project.xoelt("run", PIPE, "--date", DATE, env=env)
    assert failed.returncode == 1
    assert _error_line(failed.stderr) == _error_line(baseline.stderr)
    (warning,) = _warnings(failed.stderr)
    assert warning["channel"] == "relay" and warning["error"].startswith("SMTP 535")
    assert box.messages == [] and box.logins == []
    assert "wrong-password-123" not in failed.stderr
