"""Run metrics through the CLI: a Pushgateway and an OTLP collector on loopback.

A local ThreadingHTTPServer records what arrives (method, path, headers, body); the tests
parse it the way the receiver would (the Prometheus text parser, the OTLP JSON mapping) and
check names, labels and values. Endpoints that are refused, answer 500 or hang must not
change the run's outcome.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Project

PIPE = "demo/gladly_demo"
DATE = "2026-11-03"
ROWS = {"contact_timestamps": 135, "work_sessions": 45, "agents": 5}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """What the endpoint received; ``mode`` is how it answers: ok, error (500) or hang."""

    url: str
    mode: str = "ok"
    requests: list[Received] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        recorder = cast(_Server, self.server).recorder
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorder.requests.append(Received(self.command, self.path, dict(self.headers), body))
        if recorder.mode == "hang":
            time.sleep(30)
            return
        status = 500 if recorder.mode == "error" else 200
        reply = b"{}" if status == 200 else b"boom"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = _serve


@pytest.fixture
def endpoint() -> Generator[Recorder]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.recorder = Recorder(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.recorder
    server.shutdown()
    server.server_close()


def _targets(project: Project, metrics: str) -> dict[str, str]:
    path = project.root / "targets.yaml"
    path.write_text(f"obs:\n  type: local\n  metrics: {metrics}\n")
    return {"XOELT_TARGETS": str(path), "XOELT_TARGET": "obs"}


def _run(project: Project, env: dict[str, str], *args: str) -> Any:
    return project.xoelt("run", PIPE, "--date", DATE, "--format", "json", *args, env=env)


def _grouping(path: str) -> dict[str, str]:
    """A Pushgateway push path → its job and grouping key (``label@base64/…`` decoded)."""
    parts = path.removeprefix("/metrics/").split("/")
    key = {}
    for label, value in zip(parts[::2], parts[1::2], strict=True):
        if label.endswith("@base64"):
            label, value = label.removesuffix("@base64"), base64.urlsafe_b64decode(value).decode()
        key[label] = value
    return key


def _families(body: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition → {name: [(labels, value)]} (the gauge samples)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.type == "gauge", family
        out[family.name] = [(dict(s.labels), s.value) for s in family.samples]
    return out


def test_pushgateway_receives_rows_durations_success_and_last_success(
    project: Project, endpoint: Recorder
) -> None:
    project.publish_demo_files()
    env = _targets(project, f"{{type: pushgateway, url: '{endpoint.url}', timeout_seconds: 5}}")
    before = time.time()
    proc = _run(project, env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    groups = [_grouping(r.path) for r in endpoint.requests]
    pushed = {g.get("source", ""): r for g, r in zip(groups, endpoint.requests, strict=True)}
    assert {g["job"] for g in groups} == {"xoelt"}
    assert {g["pipeline"] for g in groups} == {PIPE}  # the name the ledger and logs use
    assert set(pushed) == {"", *ROWS, "gold"}  # one group per source, and the pipeline's
    assert {r.method for r in endpoint.requests} == {"POST"}  # replaces only what it carries

    for source in report["sources"]:
        name = source["name"]
        got = _families(pushed[name].body)
        rows = {labels["stage"]: value for labels, value in got["xoelt_rows"]}
        assert rows == {stage: float(n) for stage, n in source["rows"].items()}
        assert rows["load"] == ROWS[name]
        seconds = dict((lb["stage"], v) for lb, v in got["xoelt_stage_duration_seconds"])
        assert set(seconds) == {"extract", "stage", "load", "transform"}
        assert all(v >= 0 for v in seconds.values())
        [(labels, stamp)] = got["xoelt_last_success_timestamp_seconds"]
        assert labels == {} and before <= stamp <= time.time()  # the gateway adds pipeline/source

    gold = _families(pushed["gold"].body)
    assert gold["xoelt_rows"] == [({"stage": "gold"}, float(sum(report["gold"].values())))]
    run = _families(pushed[""].body)
    assert run["xoelt_run_success"] == [({}, 1.0)]
    findings = {lb["severity"]: v for lb, v in run["xoelt_data_test_findings"]}
    assert findings == {"info": 0.0, "warn": 0.0, "error": 0.0}


def test_failed_run_pushes_failure_and_keeps_last_success(
    project: Project, endpoint: Recorder
) -> None:
    # No landing files: extract fails for the first source.
    env = _targets(project, f"{{type: pushgateway, url: '{endpoint.url}'}}")
    proc = _run(project, env)
    assert proc.returncode == 1
    assert "extract" in proc.stderr and "contact_timestamps" in proc.stderr
    pushed = {_grouping(r.path).get("source", ""): _families(r.body) for r in endpoint.requests}
    assert set(pushed) == {"", "contact_timestamps"}
    assert pushed[""]["xoelt_run_success"] == [({}, 0.0)]
    source = pushed["contact_timestamps"]
    assert "xoelt_last_success_timestamp_seconds" not in source  # the old value stays
    assert source["xoelt_rows"] == [({"stage": "extract"}, 0.0)]  # no stale count left behind
    [(labels, seconds)] = source["xoelt_stage_duration_seconds"]
    assert labels == {"stage": "extract"} and seconds >= 0


def test_otlp_collector_receives_json_with_resolved_header(
    project: Project, endpoint: Recorder
) -> None:
    project.publish_demo_files()
    env = _targets(
        project,
        f"{{type: otlp, endpoint: '{endpoint.url}', "
        "headers: {Authorization: 'Bearer ${OTLP_TOKEN}', X-Scope-OrgID: acme}}",
    )
    env["OTLP_TOKEN"] = "s3cr3t-otlp-token"
    proc = _run(project, env)
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t-otlp-token" not in proc.stderr + proc.stdout
    [req] = endpoint.requests
    assert (req.method, req.path) == ("POST", "/v1/metrics")
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"] == "Bearer s3cr3t-otlp-token"
    assert req.headers["X-Scope-OrgID"] == "acme"

    [resource] = json.loads(req.body)["resourceMetrics"]
    attrs = {a["key"]: a["value"]["stringValue"] for a in resource["resource"]["attributes"]}
    assert attrs["service.name"] == "xoelt"
    [scope] = resource["scopeMetrics"]
    metrics = {m["name"]: m for m in scope["metrics"]}
    assert set(metrics) == {
        "xoelt_rows",
        "xoelt_stage_duration_seconds",
        "xoelt_run_success",
        "xoelt_last_success_timestamp_seconds",
        "xoelt_data_test_findings",
    }
    assert metrics["xoelt_stage_duration_seconds"]["unit"] == "s"

    def points(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        out = {}
        for p in metrics[name]["gauge"]["dataPoints"]:
            assert int(p["timeUnixNano"]) > 0 and isinstance(p["timeUnixNano"], str)
            key = tuple(sorted((a["key"], a["value"]["stringValue"]) for a in p["attributes"]))
            out[key] = p["asDouble"]
        return out

    rows = points("xoelt_rows")
    for source, n in ROWS.items():
        key = (("pipeline", PIPE), ("source", source), ("stage", "load"))
        assert rows[key] == n
    assert points("xoelt_run_success") == {(("pipeline", PIPE),): 1.0}
    last = points("xoelt_last_success_timestamp_seconds")
    assert {dict(k)["source"] for k in last} == {*ROWS, "gold"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["refused", "error", "hang"])
def test_a_down_endpoint_changes_nothing(project: Project, endpoint: Recorder, mode: str) -> None:
    project.publish_demo_files()
    url = f"http://127.0.0.1:{_closed_port()}" if mode == "refused" else endpoint.url
    endpoint.mode = mode
    env = _targets(project, f"{{type: pushgateway, url: '{url}', timeout_seconds: 1}}")
    started = time.monotonic()
    proc = _run(project, env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {s["name"]: s["rows"]["load"] for s in report["sources"]} == ROWS
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    warned = [ln for ln in lines if ln["event"].startswith("metrics push")]
    assert len(warned) == 1 and warned[0]["level"] == "warning", proc.stderr
    assert warned[0]["endpoint"] == url
    if mode == "hang":  # the call's own timeout, or the deadline around the whole push
        assert "timed out" in json.dumps(warned[0])
        assert elapsed < 25, "a hung endpoint must cost at most its timeout, not its hang"
    elif mode == "error":
        assert "500" in warned[0]["error"]


def test_a_down_endpoint_does_not_hide_the_runs_error(project: Project, endpoint: Recorder) -> None:
    endpoint.mode = "error"
    env = _targets(project, f"{{type: pushgateway, url: '{endpoint.url}', timeout_seconds: 1}}")
    proc = _run(project, env)  # no landing files: extract fails
    assert proc.returncode == 1
    assert "metrics push failed" in proc.stderr
    assert "extract" in proc.stderr and "contact_timestamps" in proc.stderr


def test_help_and_plan_with_metrics_configured_import_no_exporter(
    project: Project, endpoint: Recorder, tmp_path: Path
) -> None:
    env = _targets(project, f"{{type: otlp, endpoint: '{endpoint.url}'}}")
    code = (
        "import sys\n"
        "from xoelt.cli import cli\n"
        f"for args in (['--help'], ['plan', {PIPE!r}, '--date', {DATE!r}, '--format', 'json']):\n"
        "    try:\n"
        "        cli(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('LOADED', sorted(m for m in ('prometheus_client', 'httpx') if m in sys.modules),"
        " file=sys.stderr)\n"
    )

    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.root,
        env={**_clean_env(), **env, "XOELT_HOME": str(tmp_path / "h")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "LOADED []" in proc.stderr, proc.stderr
    assert endpoint.requests == []  # plan pushes nothing


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}


def test_unknown_metrics_key_is_a_config_error(project: Project, endpoint: Recorder) -> None:
    env = _targets(project, f"{{type: pushgateway, url: '{endpoint.url}', timout_seconds: 1}}")
    proc = project.xoelt("plan", PIPE, "--date", DATE, env=env)
    assert proc.returncode == 2
    assert "timout_seconds" in proc.stderr and "targets.yaml" in proc.stderr
