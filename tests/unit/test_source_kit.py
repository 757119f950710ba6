"""The source kit: registration by class statement, cursor paging, prefetch, CSV files, secrets."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any, get_args

import pytest

from xoelt.config.types import SecretRef, StrictModel
from xoelt.errors import ConfigError, InputError, RunError, SourceError
from xoelt.sources import get_source, source_types
from xoelt.sources.base import REGISTRY, CsvSink, Source, env_label, secret_ref
from xoelt.sources.csv_files import CsvFile, CsvFiles
from xoelt.sources.gladly import KINDS, GladlySource
from xoelt.sources.http import TransientHTTPError
from xoelt.sources.paging import CursorPaginator
from xoelt.sources.prefetch import Prefetch


@pytest.fixture
def registry() -> Iterator[dict[str, Any]]:
    """The registry, restored afterwards (test_docs checks every registered name)."""
    saved = dict(source_types())
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(saved)


class _Cfg(StrictModel):
    name: str = "x"


# -- registration ------------------------------------------------------------------------------


def test_class_statement_registers_and_knows_its_config(registry: dict[str, Any]) -> None:
    class KitSource(Source[_Cfg], source_type="kit_test_api"):
        def extract(self, sink: CsvSink) -> None:
            sink.open([self.config.name])

    assert get_source("kit_test_api") is KitSource
    assert KitSource.source_type == "kit_test_api"
    assert KitSource.Config is _Cfg


def test_a_shared_base_is_not_registered_and_passes_its_config_on(
    registry: dict[str, Any],
) -> None:
    before = set(registry)

    class Shared(Source[_Cfg]):
        def extract(self, sink: CsvSink) -> None:
            pass

    class Concrete(Shared, source_type="kit_concrete_api"):
        pass

    assert set(registry) - before == {"kit_concrete_api"}
    assert Concrete.Config is _Cfg


def test_a_source_type_is_taken_once(registry: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=r"'s3_upload' is taken by xoelt\.sources\.s3_upload\."):

        class Impostor(Source[_Cfg], source_type="s3_upload"):
            def extract(self, sink: CsvSink) -> None:
                pass


def test_a_registered_source_needs_a_config_type(registry: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=r"subclass Source\[<its config model>\]"):

        class Bare(Source, source_type="kit_bare_api"):  # type: ignore[type-arg]
            def extract(self, sink: CsvSink) -> None:
                pass


def test_unknown_source_type_lists_the_valid_names() -> None:
    with pytest.raises(InputError) as err:
        get_source("nope")
    assert str(err.value) == (
        "unknown source_type 'nope'; valid: bamboohr_api, gladly_api, gmail_attachments, "
        "google_sheets, s3_upload, sprout_social_api"
    )


def test_every_gladly_kind_has_one_object() -> None:
    kinds = get_args(GladlySource.Config.model_fields["kind"].annotation)
    assert sorted(KINDS) == sorted(kinds)


# -- errors ------------------------------------------------------------------------------------


def test_source_errors_are_run_errors_and_transient_ones_retry() -> None:
    err = TransientHTTPError("GET /x: HTTP 503", retry_after=2.0)
    assert isinstance(err, SourceError) and isinstance(err, RunError)
    assert err.transient and err.retry_after == 2.0
    assert not SourceError("bad answer").transient
    assert SourceError("bad answer").detail == "bad answer"


# -- secrets -----------------------------------------------------------------------------------


def test_secret_ref_is_the_configured_reference_or_the_documented_variable() -> None:
    configured = SecretRef("MY_TOKEN")
    assert secret_ref(configured, "SPROUT_API_TOKEN", "token") is configured
    default = secret_ref(None, "SPROUT_API_TOKEN", "token")
    assert default.var == "SPROUT_API_TOKEN"
    with pytest.raises(ConfigError, match=r"SPROUT_API_TOKEN is not set \(for token\)"):
        default.resolve({})


def test_env_label_shows_references_and_values_never_secrets() -> None:
    assert env_label(None, "GLADLY_API_USER") == "${GLADLY_API_USER}"
    assert env_label(SecretRef("OTHER"), "GLADLY_API_USER") == "${OTHER}"
    assert env_label("12345", "SPROUT_CUSTOMER_ID") == "12345"


# -- cursor paging -----------------------------------------------------------------------------


def _follow(answers: list[str | None], repeated: str = "same cursor") -> list[tuple[int, Any]]:
    pages = CursorPaginator(repeated=repeated)
    sent = []
    for cursor in pages:
        sent.append((pages.page, cursor))
        pages.update(answers[pages.page - 1], where=f"page {pages.page}")
    return sent


def test_paginator_sends_each_cursor_once_and_stops_without_one() -> None:
    assert _follow(["a", "b", None]) == [(1, None), (2, "a"), (3, "b")]
    assert _follow([""]) == [(1, None)]


def test_paginator_stops_when_update_is_not_called() -> None:
    assert list(CursorPaginator()) == [None]


@pytest.mark.parametrize("answers", [["a", "a"], ["a", "b", "a"]])
def test_paginator_refuses_a_cursor_it_already_sent(answers: list[str | None]) -> None:
    with pytest.raises(SourceError) as err:
        _follow(answers, repeated="nextPageToken repeated; stopping a loop")
    assert err.value.message == f"page {len(answers)}: nextPageToken repeated; stopping a loop"


def test_paginator_default_message_is_sprouts() -> None:
    with pytest.raises(SourceError, match="page 2: the API returned the same cursor again"):
        pages = CursorPaginator()
        for _ in pages:
            pages.update("same", where=f"page {pages.page}")


# -- prefetch ----------------------------------------------------------------------------------


def test_prefetch_yields_every_page_in_order() -> None:
    pages = Prefetch(iter([[1], [2], [3]]), depth=1)
    assert list(pages) == [[1], [2], [3]]


def test_prefetch_reraises_the_threads_error_in_the_reader() -> None:
    def pages() -> Iterator[list[int]]:
        yield [1]
        raise SourceError("page 2 failed")

    got = []
    with pytest.raises(SourceError, match="page 2 failed"):
        for page in Prefetch(pages()):
            got.append(page)
    assert got == [[1]]


def test_prefetch_stop_lets_a_blocked_thread_end() -> None:
    def endless() -> Iterator[list[int]]:
        n = 0
        while True:
            n += 1
            yield [n]

    pager = Prefetch(endless(), depth=1, name="kit-test-pages")
    assert next(iter(pager)) == [1]
    pager.stop(wait=2.0)
    assert not any(t.name == "kit-test-pages" for t in threading.enumerate())


# -- CSV files ---------------------------------------------------------------------------------


def _file(label: str, text: str, **kw: Any) -> CsvFile:
    header = text.splitlines()[0].split(",") if text else []

    def opener() -> AbstractContextManager[IO[str]]:
        return nullcontext(io.StringIO(text, newline=""))

    return CsvFile(label, header, opener, {"key": label}, **kw)


def _sink(tmp_path: Path) -> CsvSink:
    return CsvSink(tmp_path / "out.csv")


def _written(sink: CsvSink) -> str:
    sink.close()
    return sink.path.read_bytes().decode()


def test_files_combine_by_column_name_in_first_seen_order(tmp_path: Path) -> None:
    files = CsvFiles(delimiter=",", allow_empty=True, columns=[])
    files.add(_file("a.csv", "id,name\n1,x\n"))
    files.add(_file("empty.csv", ""))  # allowed: 0 rows, listed
    files.add(_file("b.csv", "extra,id\ne,2\n\n"))
    sink = _sink(tmp_path)
    listing = files.write(sink, nothing="no files", noun="files")
    assert _written(sink) == "id,name,extra\r\n1,x,\r\n2,,e\r\n"
    assert listing == [
        {"key": "a.csv", "rows": 1},
        {"key": "empty.csv", "rows": 0},
        {"key": "b.csv", "rows": 1},
    ]


def test_an_empty_file_is_refused_unless_allow_empty() -> None:
    files = CsvFiles(delimiter=",", allow_empty=False, columns=[])
    with pytest.raises(SourceError, match=r"^empty.csv: empty file \(no header\)"):
        files.add(_file("empty.csv", ""))


def test_files_are_written_in_order_with_reserved_columns(tmp_path: Path) -> None:
    local = tmp_path / "copy.csv"
    local.write_text("x")
    files = CsvFiles(delimiter=";", allow_empty=False, columns=[], reserved=["_from"])
    files.add(_file("late", "v\n2\n", extra=("late",), order=(2,)))
    files.add(_file("early", "v\n1\n", extra=("early",), order=(1,), local=local))
    sink = _sink(tmp_path)
    files.write(sink, nothing="none", noun="files")
    assert _written(sink) == "v,_from\r\n1,early\r\n2,late\r\n"
    assert not local.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,id\n", "f.csv: duplicate column names in header"),
        ("id,_from\n", "f.csv: has a column named _from, which xoelt adds itself"),
    ],
)
def test_a_bad_header_is_refused_when_added(text: str, message: str) -> None:
    files = CsvFiles(delimiter=",", allow_empty=False, columns=[], reserved=["_from"])
    with pytest.raises(SourceError) as err:
        files.add(_file("f.csv", text))
    assert err.value.message == message


def test_no_files_is_an_error_unless_allowed_and_then_columns_are_the_header(
    tmp_path: Path,
) -> None:
    with pytest.raises(SourceError) as err:
        CsvFiles(delimiter=",", allow_empty=False, columns=[]).write(
            _sink(tmp_path), nothing="no files under x/", noun="files"
        )
    assert err.value.message == "no files under x/ (set allow_empty: true if that is normal)"
    with pytest.raises(SourceError) as err:
        CsvFiles(delimiter=",", allow_empty=True, columns=[]).write(
            _sink(tmp_path), nothing="-", noun="attachment"
        )
    assert err.value.message == (
        "allow_empty found no attachment and no `columns:` are configured for the header"
    )
    sink = _sink(tmp_path)
    files = CsvFiles(delimiter=",", allow_empty=True, columns=["a", "_from"], reserved=["_from"])
    assert files.write(sink, nothing="-", noun="files") == []
    assert _written(sink) == "a,_from\r\n"


def test_a_ragged_or_unreadable_file_names_itself(tmp_path: Path) -> None:
    files = CsvFiles(delimiter=",", allow_empty=False, columns=[])
    files.add(_file("r.csv", "a,b\n1\n"))
    with pytest.raises(SourceError) as err:
        files.write(_sink(tmp_path), nothing="-", noun="files")
    assert err.value.message == "r.csv line 2: 1 fields, the header has 2"

    def broken() -> AbstractContextManager[IO[str]]:
        raise OSError("connection reset")

    files = CsvFiles(delimiter=",", allow_empty=False, columns=[])
    files.add(CsvFile("gone.csv", ["a"], broken, {}))
    with pytest.raises(SourceError) as err:
        files.write(_sink(tmp_path), nothing="-", noun="files")
    assert err.value.message == "gone.csv: connection reset"
    assert isinstance(err.value.__cause__, OSError)


# -- the sink ----------------------------------------------------------------------------------


def test_sink_checks_widths_and_header_changes(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    with pytest.raises(SourceError, match=r"CsvSink.open\(fieldnames\) must be called"):
        sink.write_values(["1"])
    sink.open(["a", "b"])
    sink.open(["a", "b"])
    sink.write_values(["1", "x,y"])
    sink.write_many_values([["2", None], ["3", ""]])
    with pytest.raises(SourceError, match="row 4 has 1 fields, the header has 2"):
        sink.write_many_values([["4"]])
    with pytest.raises(SourceError, match="columns changed mid-extract"):
        sink.open(["b", "a"])
    assert sink.rows == 3
    # None is missing (an empty field), '' an empty string (quoted): see xoelt.sources.csvio
    assert _written(sink) == 'a,b\r\n1,"x,y"\r\n2,\r\n3,""\r\n'
