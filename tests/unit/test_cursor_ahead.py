"""Sprout's next cursor read from an answer's last bytes (the next request goes out before
the page is parsed): it must be the cursor a JSON parser finds, or "not read" (then parsed)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xoelt.errors import SourceError
from xoelt.sources.sprout_social import UNREAD, Answer, cursor_ahead

WHERE = "POST http://127.0.0.1/v1/1/messages (page 3)"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _parsed_cursor(raw: bytes) -> Any:
    answer = json.loads(raw)
    paging = answer.get("paging") if isinstance(answer, dict) else None
    return paging.get("next_cursor") if isinstance(paging, dict) else None


@settings(max_examples=200, deadline=None)
@given(
    members=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    data=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=4),
    paging=st.none()
    | st.dictionaries(st.sampled_from(["next_cursor", "x"]), json_values, max_size=2),
    spaced=st.booleans(),
)
@example(members={}, data=[{"text": '"paging":{"next_cursor":"evil"}}'}], paging=None, spaced=False)
@example(members={"a": {"paging": {"next_cursor": "inner"}}}, data=[], paging=None, spaced=False)
def test_read_ahead_cursor_is_the_parsed_one_or_unread(
    members: dict[str, Any], data: list[Any], paging: Any, spaced: bool
) -> None:
    doc: dict[str, Any] = {**members, "data": data}
    if paging is not None:
        doc.pop("paging", None)
        doc["paging"] = paging  # last, as Sprout answers
    raw = json.dumps(doc, separators=(", ", ": ") if spaced else (",", ":")).encode()
    ahead = cursor_ahead(raw)
    if ahead is not UNREAD:
        assert ahead == _parsed_cursor(raw)
        assert ahead is None or (isinstance(ahead, str) and ahead)


def test_sprouts_own_shape_is_read_ahead() -> None:
    raw = b'{"data":[{"guid":"g1","text":"a \\"paging\\": {} b"}],"paging":{"next_cursor":"456def=="}}'
    assert cursor_ahead(raw) == "456def=="
    assert cursor_ahead(b'{"data":[],"paging":{}}') is None  # a paging object without a cursor
    # No paging object (the last page), paging first, or not JSON: parsed instead.
    for raw in (b'{"data":[]}', b'{"paging":{"next_cursor":"x"},"data":[]}', b"<html>", b""):
        assert cursor_ahead(raw) is UNREAD


def test_answer_checks_the_parsed_cursor_against_the_one_read_ahead() -> None:
    good = Answer(orjson.dumps({"data": [{"guid": "a"}], "paging": {"next_cursor": "c2"}}), WHERE)
    assert good.ahead == "c2" and good.data() == [{"guid": "a"}]
    # Duplicate keys: a parser keeps the last one, as the read-ahead does.
    twice = Answer(
        b'{"paging":{"next_cursor":"c1"},"data":[],"paging":{"next_cursor":"c2"}}', WHERE
    )
    assert twice.ahead == "c2" and twice.data() == []
    forged = Answer(b'{"data":[],"paging":{"next_cursor":"c2"}}', WHERE)
    forged.ahead = "c9"  # as if the tail had named another cursor than the parsed answer
    with pytest.raises(SourceError, match=r"\(page 3\): paging.next_cursor differs"):
        forged.data()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>maintenance</html>", "response is not JSON: '<html>maintenance</html>'"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"error":"Invalid cursor"}', "Invalid cursor"),
        (b'{"data":{}}', "response has no 'data' array"),
        (b'{"data":[],"paging":{"next_cursor":7}}', "paging.next_cursor is not a string"),
    ],
)
def test_a_bad_answer_names_its_page(raw: bytes, message: str) -> None:
    answer = Answer(raw, WHERE)
    with pytest.raises(SourceError) as caught:
        answer.cursor()
    assert str(caught.value).startswith(f"{WHERE}: ") and message in str(caught.value)
