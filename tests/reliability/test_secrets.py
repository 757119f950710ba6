"""Secret sentinels: an API that echoes the Authorization header back must not get a
credential into stderr, stdout, logs or the ledger, in any of the forms it travels in.

The fake answers 503 first (so the client logs "retrying" warnings with the answer's text),
then 401 with ``{"error": "invalid token: <the Authorization header>"}``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest

from tests.fakes.api import FakeApi, Request, Response, route
from tests.fakes.server import FakeServer
from tests.reliability.report import record
from xoelt import redact

TOKEN = "tok-SENTINEL-5f3a9c"
USER = "bot-sentinel@example.com"


class EchoingApi(FakeApi):
    """Every request: 503 for the first two, then 401 quoting the Authorization header."""

    @route("POST", "/api/v1/reports/work-session-events")
    def gladly(self, request: Request) -> Response:
        raise AssertionError("the guard answers every request")

    @route("POST", "/v1/{customer}/messages")
    def sprout(self, request: Request) -> Response:
        raise AssertionError("the guard answers every request")

    @route("POST", "/api/gateway.php/{company}/v1/reports/custom")
    def bamboohr(self, request: Request) -> Response:
        raise AssertionError("the guard answers every request")

    def guard(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if request.number <= 2:
            return Response(503, json={"error": f"busy; you sent {header}"})
        return Response(401, json={"error": f"invalid token: {header}", "user": USER})


@pytest.fixture
def echo() -> Iterator[EchoingApi]:
    api = EchoingApi()
    with FakeServer(api):
        yield api


PIPELINE = """\
dag:
  domain: leak
  pipeline_name: {name}
  schedule: "0 6 * * *"
  time_window: {{refresh_type: daily, lag: {{days: 1}}, timezone: UTC}}
globals:
  snowflake: {{database: LEAK_DB}}
sources:
  things:
    source_type: {source_type}
    load_strategy: full_refresh
    extractor:
{extractor}
    snowflake: {{target_table: THINGS}}
"""

SOURCES = {
    "sprout": (
        "sprout_social_api",
        "      base_url: {url}\n      customer_id: '42'\n      fields: [guid]\n"
        "      retry: {{max_attempts: 3, initial_backoff: 0.01, max_backoff: 0.05}}\n",
    ),
    "bamboohr": (
        "bamboohr_api",
        "      base_url: {url}\n      company: acme\n      fields: [id]\n"
        "      retry: {{max_attempts: 3, initial_backoff: 0.01, max_backoff: 0.05}}\n",
    ),
    "gladly": (
        "gladly_api",
        "      kind: work_session_events\n      base_url: {url}\n"
        "      retry: {{max_attempts: 3, initial_backoff: 0.01, max_backoff: 0.05}}\n",
    ),
}


def forms() -> list[str]:
    basic = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    keyed = base64.b64encode(f"{TOKEN}:x".encode()).decode()  # BambooHR: the key as user
    return [TOKEN, basic, basic.rstrip("="), keyed, keyed.rstrip("="), quote(TOKEN, safe="")]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_an_echoing_api_leaks_no_credential(name: str, echo: EchoingApi, tmp_path: Path) -> None:
    ok = False
    try:
        source_type, extractor = SOURCES[name]
        (tmp_path / "pipelines" / "leak").mkdir(parents=True)
        (tmp_path / "pipelines" / "leak" / f"{name}.yaml").write_text(
            PIPELINE.format(
                name=name, source_type=source_type, extractor=extractor.format(url=echo.url)
            ),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
        env |= {
            "XOELT_HOME": str(tmp_path / "home"),
            "SPROUT_API_TOKEN": TOKEN,
            "GLADLY_API_USER": USER,
            "GLADLY_API_TOKEN": TOKEN,
            "BAMBOOHR_API_KEY": TOKEN,
        }
        texts = []
        for args in (
            ["run", f"leak/{name}", "--date", "2026-11-03"],
            ["--debug", "run", f"leak/{name}", "--date", "2026-11-03"],
            ["status", f"leak/{name}"],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "xoelt", "--log-format", "json", *args],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            texts += [proc.stdout, proc.stderr]
        assert any("invalid token" in t for t in texts), "\n".join(texts)  # the echo reached us
        assert any("retrying" in t for t in texts), texts
        with duckdb.connect(str(tmp_path / "home" / "warehouse" / "LEAK_DB.duckdb")) as db:
            ledger = db.execute('SELECT "MESSAGE", "DETAILS" FROM "XOELT"."RUN_LEDGER"').fetchall()
        assert any("invalid token" in (message or "") for message, _ in ledger), ledger
        texts += [str(row) for row in ledger]
        for text in texts:
            for form in forms():
                assert form not in text, f"{form!r} leaked in {text[:2000]}"
        assert any(redact.MASK in t for t in texts)
        ok = True
    finally:
        record("secret", f"echoing {name} API", ok)


def test_redaction_covers_encodings_and_pairs() -> None:
    redact.forget_all()
    try:
        redact.register("alice@example.com")
        redact.register("s3cr3t-value")
        basic = base64.b64encode(b"alice@example.com:s3cr3t-value").decode()
        text = f"Basic {basic} Bearer s3cr3t-value {quote('s3cr3t-value')} short"
        assert redact.redact(text) == "Basic *** Bearer *** *** short"
        # any pair, in either order, and a value inside base64 of a larger text
        redact.register("tok-third-1234")
        pair = base64.b64encode(b"tok-third-1234:alice@example.com").decode().rstrip("=")
        blob = base64.b64encode(b'{"token": "tok-third-1234"}').decode()
        assert redact.redact(f"x {pair} {blob} aGVsbG8gd29ybGQ=") == "x *** *** aGVsbG8gd29ybGQ="
        redact.register("abc")  # too short to mask safely: ignored
        assert redact.redact("abcdef") == "abcdef"
    finally:
        redact.forget_all()
