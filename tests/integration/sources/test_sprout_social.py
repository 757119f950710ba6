"""``sprout_social_api`` against a fake Sprout Social messages API on 127.0.0.1.

The fake answers as the published API does: bearer token, ``Accept``/``Content-Type`` of
``application/json`` (415 otherwise), a ``filters``/``fields``/``limit``/``sort``/``timezone``
body it validates, forward-only opaque cursors (400 on a bad one), no ``paging`` object on
the last page, ``{"error": "..."}`` bodies. It reads ``created_time.in(a..b)`` as inclusive
of ``b`` (the unfavourable reading), so the boundary message must be dropped by the source.
Faults are injected by request number (``tests.fakes.sprout``).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FOREVER, FakeApis, Fault
from tests.fakes.sprout import FAULTS, FakeSprout
from tests.integration.sources.conftest import SourceHarness, data_text

REPO = Path(__file__).resolve().parents[3]
TOKEN = "sprout-test-token-8f3a"
CUSTOMER = "4242"
FIELDS = [
    "guid",
    "created_time",
    "network",
    "text",
    "from.name",
    "from",
    "internal.tags.id",
    "internal.sent_by.email",
    "case_id",
    "is_reply",
]


def _msg(i: int, created: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "guid": f"msg-{i}",
        "created_time": created,
        "network": "INSTAGRAM",
        "post_type": "INSTAGRAM_MEDIA",
        "text": f"post {i}",
        "from": {"guid": f"u{i}", "name": f"user {i}"},
        "internal": {"tags": [{"id": 10 + i, "name": "t"}], "sent_by": {"email": f"a{i}@x.com"}},
        "case_id": None,
        "is_reply": False,
    }
    base.update(extra)
    return base


# Window for --date 2026-11-03 in America/New_York: [2026-11-02T05:00Z, 2026-11-03T05:00Z).
MESSAGES = [
    _msg(0, "2026-11-02T04:59:59Z"),  # before the window
    _msg(1, "2026-11-02T05:00:00Z"),  # exactly the start: in
    _msg(
        2,
        "2026-11-02T09:15:00Z",
        text='comma, "quote"\nnewline é ✓',
        **{"from": {"guid": "u2", "name": 'Ana, "the" tester'}},
    ),
    _msg(3, "2026-11-02T11:00:00Z", internal={"tags": [], "sent_by": None}, case_id=991),
    _msg(4, "2026-11-02T12:30:00Z", is_reply=True, network="TWITTER"),
    _msg(5, "2026-11-02T15:00:00Z", internal=None),
    _msg(6, "2026-11-02T20:00:00Z", internal={"tags": [{"id": 1}, {"id": 2}]}),
    _msg(7, "2026-11-03T04:59:59Z"),  # last second of the window: in
    _msg(8, "2026-11-03T05:00:00Z"),  # exactly the end: the fake returns it, the source drops it
    _msg(9, "2026-11-03T06:00:00Z"),  # after the window
]

EXPECTED = [
    FIELDS,
    ["msg-1", "2026-11-02T05:00:00Z", "INSTAGRAM", "post 1", "user 1",
     '{"guid":"u1","name":"user 1"}', "[11]", "a1@x.com", "", "false"],
    ["msg-2", "2026-11-02T09:15:00Z", "INSTAGRAM", 'comma, "quote"\nnewline é ✓',
     'Ana, "the" tester', '{"guid":"u2","name":"Ana, \\"the\\" tester"}', "[12]", "a2@x.com",
     "", "false"],
    ["msg-3", "2026-11-02T11:00:00Z", "INSTAGRAM", "post 3", "user 3",
     '{"guid":"u3","name":"user 3"}', "[]", "", "991", "false"],
    ["msg-4", "2026-11-02T12:30:00Z", "TWITTER", "post 4", "user 4",
     '{"guid":"u4","name":"user 4"}', "[14]", "a4@x.com", "", "true"],
    ["msg-5", "2026-11-02T15:00:00Z", "INSTAGRAM", "post 5", "user 5",
     '{"guid":"u5","name":"user 5"}', "", "", "", "false"],
    ["msg-6", "2026-11-02T20:00:00Z", "INSTAGRAM", "post 6", "user 6",
     '{"guid":"u6","name":"user 6"}', "[1,2]", "", "", "false"],
    ["msg-7", "2026-11-03T04:59:59Z", "INSTAGRAM", "post 7", "user 7",
     '{"guid":"u7","name":"user 7"}', "[17]", "a7@x.com", "", "false"],
]  # fmt: skip


@pytest.fixture
def sprout(fake_apis: FakeApis) -> Iterator[FakeSprout]:
    with fake_apis.use(FakeSprout) as api:
        api.token, api.customer, api.messages = TOKEN, CUSTOMER, list(MESSAGES)
        yield api


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_API_TOKEN", TOKEN)
    monkeypatch.setenv("SPROUT_CUSTOMER_ID", CUSTOMER)


def _source(fake: FakeSprout, **extra: Any) -> dict[str, Any]:
    extractor: dict[str, Any] = {
        "base_url": fake.url,
        "token": "${SPROUT_API_TOKEN}",
        "customer_id": CUSTOMER,
        "fields": FIELDS,
        "limit": 3,
        "rate_limit_per_minute": 100_000,
        "retry": {
            "initial_backoff": 0.01,
            "max_backoff": 0.05,
            "timeout_seconds": 1,
            "max_attempts": 4,
        },
    }
    extractor.update(extra)
    return {"source_type": "sprout_social_api", "extractor": extractor}


def _run(harness: SourceHarness, source: dict[str, Any], day: str = "2026-11-03") -> Any:
    harness.pipeline("sprout", source)
    return harness.cli("extract", "test/sprout", "--date", day)


def _csv(harness: SourceHarness) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data_text(harness.ingest_files()), newline="")))


def _manifest(harness: SourceHarness) -> dict[str, Any]:
    [path] = [p for p in harness.ingest_files() if p.name == "_manifest.json"]
    return json.loads(path.read_text())


def _failed(harness: SourceHarness, result: Any, *needles: str) -> None:
    harness.assert_failed(result, *needles, secrets=(TOKEN,))


WINDOW = "created_time.in(2026-11-02T00:00:00-05:00..2026-11-03T00:00:00-05:00)"


def test_pages_with_cursors_and_sends_the_documented_request(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    result = _run(
        harness,
        _source(
            sprout,
            group_id=78910,
            customer_profile_ids=[1234, 5678],
            filters=["post_type.eq(INSTAGRAM_MEDIA, TWITTER_MENTION)"],
        ),
    )
    assert result.exit_code == 0, result.output
    assert _csv(harness) == EXPECTED
    manifest = _manifest(harness)
    assert manifest["rows"] == 7
    assert manifest["details"]["pages"] == 3
    assert manifest["details"]["outside_window"] == 1  # msg-8, at exactly the window's end
    bodies = [r.json() for r in sprout.requests()]
    assert len(bodies) == 3
    assert bodies[0] == {
        "filters": [
            WINDOW,
            "group_id.eq(78910)",
            "customer_profile_id.eq(1234, 5678)",
            "post_type.eq(INSTAGRAM_MEDIA, TWITTER_MENTION)",
        ],
        "fields": FIELDS,
        "limit": 3,
        "sort": ["created_time:asc"],
        "timezone": "America/New_York",
    }
    assert "page_cursor" not in bodies[0]
    assert bodies[1]["page_cursor"] != bodies[2]["page_cursor"]
    assert all({k: v for k, v in b.items() if k != "page_cursor"} == bodies[0] for b in bodies)
    for request in sprout.requests():
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Content-Type"] == "application/json"


def test_created_time_is_requested_even_when_not_a_column(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    result = _run(harness, _source(sprout, fields=["guid", "text"], limit=100))
    assert result.exit_code == 0, result.output
    assert sprout.requests()[0].json()["fields"] == ["guid", "text", "created_time"]
    assert _csv(harness) == [["guid", "text"]] + [[r[0], r[3]] for r in EXPECTED[1:]]
    assert _manifest(harness)["details"]["pages"] == 1


def test_window_check_reads_other_timestamp_forms(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    sprout.messages = [
        _msg(1, "2026-11-02T00:30:00-05:00"),  # 05:30Z: in
        _msg(2, "2026-11-02T21:00:00.123Z"),  # fractional seconds: in
        _msg(3, "2026-11-03T05:00:00.000Z"),  # the end instant: out
        _msg(4, "2026-11-03T00:00:00-05:00"),  # the end instant with an offset: out
        _msg(5, "2026-11-02T04:59:59Z"),  # before: the fake leaves it out anyway
    ]
    result = _run(harness, _source(sprout, fields=["guid", "created_time"]))
    assert result.exit_code == 0, result.output
    assert _csv(harness) == [
        ["guid", "created_time"],
        ["msg-1", "2026-11-02T00:30:00-05:00"],
        ["msg-2", "2026-11-02T21:00:00.123Z"],
    ]
    assert _manifest(harness)["details"]["outside_window"] == 2


def test_fake_refuses_what_the_real_api_refuses(sprout: FakeSprout) -> None:
    url = f"{sprout.url}/v1/{CUSTOMER}/messages"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"filters": [WINDOW], "fields": ["guid"]}
    wrong_type = httpx.post(
        url,
        content=json.dumps(body),
        headers={**auth, "Accept": "application/json", "Content-Type": "text/plain"},
    )
    no_accept = httpx.post(url, json=body, headers={**auth, "Accept": "*/*"})
    no_auth = httpx.post(url, json=body, headers={"Accept": "application/json"})
    only_guid = httpx.post(
        url, json={"filters": [WINDOW]}, headers={**auth, "Accept": "application/json"}
    )
    assert (wrong_type.status_code, no_accept.status_code, no_auth.status_code) == (415, 415, 401)
    # no fields: only guid comes back; no sort: newest first (msg-8 is at the window's end)
    assert only_guid.json()["data"][0] == {"guid": "msg-8"}
    assert "paging" not in only_guid.json()  # default limit 50 holds all 8: no paging object


@pytest.mark.parametrize("fault", ["429", "500", "503", "504", "202", "drop", "slow"])
def test_transient_fault_on_a_later_page_recovers_exactly(
    harness: SourceHarness, sprout: FakeSprout, creds: None, fault: str
) -> None:
    sprout.script({2: fault})
    result = _run(harness, _source(sprout))
    assert result.exit_code == 0, result.output
    assert _csv(harness) == EXPECTED
    assert _manifest(harness)["rows"] == 7
    assert len(sprout.requests()) == 4  # 3 pages + 1 retry of page 2, same cursor
    assert sprout.requests()[1].json() == sprout.requests()[2].json()
    assert "page_cursor" in sprout.requests()[1].json()


def test_429_retry_after_is_honoured(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    sprout.script({1: "429-retry-after"})
    retry = {"initial_backoff": 0.01, "max_backoff": 5, "timeout_seconds": 2}
    result = _run(harness, _source(sprout, retry=retry))
    assert result.exit_code == 0, result.output
    assert _csv(harness) == EXPECTED
    assert sprout.requests()[1].at - sprout.requests()[0].at >= 0.95


@pytest.mark.parametrize(
    ("faults", "needles"),
    [
        ({2: "401"}, ["HTTP 401", "token is invalid or expired", "check SPROUT_API_TOKEN"]),
        ({2: "400-cursor"}, ["HTTP 400", "Invalid page_cursor", "(page 2)"]),
        ({2: "malformed"}, ["response is not JSON", "(page 2)"]),
        ({3: "error-200"}, ["Something went wrong on our side", "(page 3)"]),
    ],
)
def test_terminal_fault_fails_with_nothing_in_ingest(
    harness: SourceHarness,
    sprout: FakeSprout,
    creds: None,
    faults: dict[int, str],
    needles: list[str],
) -> None:
    sprout.script(faults)
    result = _run(harness, _source(sprout))
    _failed(harness, result, f"POST {sprout.url}/v1/{CUSTOMER}/messages", *needles)
    assert len(sprout.requests()) == max(faults)  # a 4xx is not retried


def test_repeated_cursor_is_an_error(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    sprout.script({2: "same-cursor"})
    result = _run(harness, _source(sprout))
    _failed(harness, result, "(page 2)", "the API returned the same cursor again")


def test_bad_message_stops_the_prefetching_thread_promptly(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    # Page 1 is bad while page 2 (fetched ahead in the helper thread) is slow to answer:
    # the run must fail at once, not wait for the request in flight.
    sprout.script({1: "not-object", 2: "slow"})
    started = time.monotonic()
    result = _run(harness, _source(sprout))
    elapsed = time.monotonic() - started
    _failed(harness, result, "(page 1): a message is not an object")
    assert elapsed < 1.2, elapsed


def test_persistent_503_gives_up(harness: SourceHarness, sprout: FakeSprout, creds: None) -> None:
    sprout.fault("messages", replace(FAULTS["503"], times=FOREVER))
    result = _run(harness, _source(sprout))
    _failed(harness, result, "HTTP 503", "gave up after 4 attempts")
    assert len(sprout.requests()) == 4


def test_wrong_token_is_401_naming_the_variable(
    harness: SourceHarness, sprout: FakeSprout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPROUT_API_TOKEN", "not-the-token")
    result = _run(harness, _source(sprout))
    _failed(harness, result, "HTTP 401", "SPROUT_API_TOKEN")
    assert "not-the-token" not in result.output


def test_env_fallbacks_for_token_and_customer_id(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    source = _source(sprout)
    del source["extractor"]["token"], source["extractor"]["customer_id"]
    result = _run(harness, source)
    assert result.exit_code == 0, result.output
    assert _csv(harness) == EXPECTED
    assert _manifest(harness)["details"]["customer_id"] == CUSTOMER


def test_customer_id_interpolated_from_env(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    result = _run(harness, _source(sprout, customer_id="${SPROUT_CUSTOMER_ID}"))
    assert result.exit_code == 0, result.output
    assert _manifest(harness)["rows"] == 7


@pytest.mark.parametrize("missing", ["SPROUT_API_TOKEN", "SPROUT_CUSTOMER_ID"])
def test_missing_credential_is_a_config_error(
    harness: SourceHarness,
    sprout: FakeSprout,
    creds: None,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
) -> None:
    monkeypatch.delenv(missing)
    source = _source(sprout)
    del source["extractor"]["customer_id"]
    result = _run(harness, source)
    assert result.exit_code == 2, result.output
    assert missing in result.output
    assert harness.ingest_files() == []
    assert sprout.requests() == []


def test_literal_token_is_rejected(harness: SourceHarness, sprout: FakeSprout) -> None:
    result = _run(harness, _source(sprout, token="sk-literal-secret"))
    assert result.exit_code == 2
    assert "token" in result.output
    assert "sk-literal-secret" not in result.output


def test_dst_day_window_has_both_offsets(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    # --date 2026-11-02: the window is 2026-11-01, the 25-hour day DST ends in New York,
    # [04:00Z, 05:00Z next day), so msg-0 (2026-11-02T04:59:59Z) is its last second.
    result = _run(harness, _source(sprout), day="2026-11-02")
    assert result.exit_code == 0, result.output
    assert sprout.requests()[0].json()["filters"] == [
        "created_time.in(2026-11-01T00:00:00-04:00..2026-11-02T00:00:00-05:00)"
    ]
    assert [row[0] for row in _csv(harness)] == ["guid", "msg-0"]
    assert _manifest(harness)["details"]["outside_window"] == 1  # msg-1 at the end instant


def test_empty_window_writes_the_header_only(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    result = _run(harness, _source(sprout), day="2026-10-01")
    assert result.exit_code == 0, result.output
    assert _csv(harness) == [FIELDS]
    assert _manifest(harness)["rows"] == 0
    assert len(sprout.requests()) == 1


def test_example_pipeline_plans_and_validates_without_credentials(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("SPROUT_API_TOKEN", "SPROUT_CUSTOMER_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XOELT_PIPELINES", str(REPO / "pipelines"))
    monkeypatch.setenv("XOELT_SQL", str(REPO / "sql"))  # the example's gold models
    example = REPO / "pipelines" / "warbyparker" / "sprout_messages_daily.yaml"
    validated = harness.cli("validate", str(example))
    assert validated.exit_code == 0, validated.output
    planned = harness.cli("plan", "warbyparker/sprout_messages_daily", "--date", "2026-11-03")
    assert planned.exit_code == 0, planned.output
    assert WINDOW in planned.output
    assert "${SPROUT_CUSTOMER_ID}" in planned.output
    assert "Bearer" not in planned.output
    assert '"rate_limit_per_minute": 60' in planned.output


# -- the 10,000-result cap ------------------------------------------------------------------


def _busy_day(count: int, *, per_second: int = 4) -> list[dict[str, Any]]:
    """``count`` messages from the window's start, ``per_second`` in each second, so the
    10,000th falls inside a second whose other messages are on both sides of the cut."""
    start = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
    return [
        {"guid": f"g{i:06d}", "created_time": _z(start + timedelta(seconds=i // per_second)),
         "text": f"m{i}"}
        for i in range(count)
    ]  # fmt: skip


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_fake_truncates_at_the_cap(sprout: FakeSprout) -> None:
    """The fake answers like Sprout: 10,000 results, then no paging, as if that were all."""
    sprout.messages = _busy_day(10_003)
    url = f"{sprout.url}/v1/{CUSTOMER}/messages"
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    body: dict[str, Any] = {"filters": [WINDOW], "fields": ["guid"], "limit": 100,
                            "sort": ["created_time:asc"]}  # fmt: skip
    got = 0
    with httpx.Client() as client:
        while True:
            answer = client.post(url, json=body, headers=headers).json()
            got += len(answer["data"])
            if "paging" not in answer:
                break
            body["page_cursor"] = answer["paging"]["next_cursor"]
    assert got == 10_000


def test_a_window_past_the_cap_is_read_completely(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    """Before: the first 10,000 messages and a warning. Now: a second query from the last
    second of the first (its messages there skipped by guid), and a window_split finding."""
    sprout.messages = _busy_day(21_002)  # two continuations
    result = _run(harness, _source(sprout, fields=["guid", "text"], limit=100))
    assert result.exit_code == 0, result.output
    rows = _csv(harness)
    guids = [r[0] for r in rows[1:]]
    assert len(guids) == 21_002 and len(set(guids)) == 21_002
    assert guids == sorted(guids)
    manifest = _manifest(harness)
    assert manifest["rows"] == 21_002
    assert manifest["details"]["queries"] == 3
    # 10,000 / 4 per second = 2,500 s: message 9,999 is at 05:41:39Z, with 9,996..9,999
    assert manifest["details"]["repeated_at_continuation"] == 4 + 4
    filters = [r.json()["filters"][0] for r in sprout.requests() if "page_cursor" not in r.json()]
    assert filters == [
        WINDOW,
        "created_time.in(2026-11-02T00:41:39-05:00..2026-11-03T00:00:00-05:00)",
        "created_time.in(2026-11-02T01:23:18-05:00..2026-11-03T00:00:00-05:00)",
    ]
    splits = [f for f in manifest["findings"] if f["kind"] == "window_split"]
    assert [f["data"]["resumed_at"] for f in splits] == [
        "2026-11-02T05:41:39Z",
        "2026-11-02T06:23:18Z",
    ]
    assert all(f["count"] == 10_000 for f in splits)


def test_the_cap_within_one_second_fails_naming_it(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    sprout.messages = _busy_day(10_001, per_second=20_000)
    result = _run(harness, _source(sprout, fields=["guid"], limit=100))
    _failed(harness, result, "10000 or more messages created within the second",
            "2026-11-02T05:00:00Z", "created_time [2026-11-02T00:00:00-05:00")  # fmt: skip


def test_sort_other_than_created_time_asc_is_refused(
    harness: SourceHarness, sprout: FakeSprout
) -> None:
    harness.pipeline("sprout", _source(sprout, sort=["created_time:desc"]))
    result = harness.cli("validate", str(harness.root / "pipelines" / "test" / "sprout.yaml"))
    assert result.exit_code == 2, result.output
    assert "sources.src.extractor.sort" in result.output
    assert "created_time:asc" in result.output


def test_window_split_is_in_the_ledger_and_status(
    harness: SourceHarness, sprout: FakeSprout, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XOELT_SQL", str(REPO / "sql"))  # its migrations create the ledger
    sprout.messages = _busy_day(10_010)
    harness.pipeline("sprout", _source(sprout, fields=["guid", "text"], limit=100))
    result = harness.cli("run", "test/sprout", "--date", "2026-11-03")
    assert result.exit_code == 0, result.output
    status = harness.cli("status", "test/sprout", "--format", "json")
    assert status.exit_code == 0, status.output
    runs = json.loads(status.output)["runs"]
    extract = next(r for r in runs if r["stage"] == "extract")
    assert int(extract["rows"]) == 10_010
    [split] = [f for f in extract["findings"] if f["kind"] == "window_split"]
    assert split["data"]["resumed_at"] == "2026-11-02T05:41:39Z"
    load = next(r for r in runs if r["stage"] == "load")
    assert int(load["rows"]) == 10_010


def _reversed(request: Any, response: Any) -> Any:
    from tests.fakes.api import Response

    page = response.json()
    page["data"].reverse()
    return Response(response.status, json=page, headers=response.headers)


def test_a_capped_answer_out_of_order_fails(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    """Continuing after the last created_time is sound only if the answer is in that order."""
    sprout.messages = _busy_day(10_001, per_second=1)
    sprout.fault_on(50, Fault(mangle=_reversed))
    result = _run(harness, _source(sprout, fields=["guid"], limit=100))
    _failed(harness, result, "10000 messages (Sprout's cap is 10000) not in created_time order")


def test_extraction_progress_hears_pages_rows_and_bytes(
    harness: SourceHarness, sprout: FakeSprout, creds: None
) -> None:
    from xoelt.core import execute, make_plan
    from xoelt.progress import ExtractCounts

    harness.pipeline("sprout", _source(sprout))
    heard: list[ExtractCounts] = []
    execute(make_plan("test/sprout", "2026-11-03"), stages=("extract",), progress=heard.append)
    written = len(data_text(harness.ingest_files()).encode())  # bytes of CSV, before gzip
    last = heard[-1]
    assert last == ExtractCounts("src", rows=7, bytes=written, pages=3, done=True)
    assert len(sprout.requests()) == 3  # a page per API answer, from the prefetch thread too
    assert [c.pages for c in heard] == sorted(c.pages for c in heard)
