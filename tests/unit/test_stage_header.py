"""Header standardisation and the 8 KB peek."""

from __future__ import annotations

import pytest

from xoelt.errors import DataError
from xoelt.stages.stage import read_header, standardise
from xoelt.storage.base import PEEK_BYTES


def test_standardise_rules() -> None:
    assert standardise(["Contact ID", "Assigned Agent ID/Name", "agent_accepted_at"]) == [
        "CONTACT_ID",
        "ASSIGNED_AGENT_ID_NAME",
        "AGENT_ACCEPTED_AT",
    ]
    assert standardise(["1st Reply", "  % of SLA  ", ""]) == ["_1ST_REPLY", "OF_SLA", "COLUMN_3"]


def test_collisions_are_unique_and_deterministic() -> None:
    names = ["Contact ID", "contact_id", "CONTACT-ID", "contact id_2"]
    assert standardise(names) == ["CONTACT_ID", "CONTACT_ID_2", "CONTACT_ID_3", "CONTACT_ID_2_2"]
    assert standardise(names) == standardise(list(names))


def test_metadata_names_are_not_shadowed() -> None:
    assert standardise(["_xo_run_id", "_XO_LOADED_AT"]) == ["XO_RUN_ID", "XO_LOADED_AT"]


def test_header_with_quoted_newline_and_bom() -> None:
    head = '\ufeff"Name","Note\nLong",Id\r\na,b,c\r\n'.encode()
    assert read_header(head, "f") == ["Name", "Note\nLong", "Id"]


def test_header_longer_than_peek_is_an_error() -> None:
    head = ",".join(f"column_{i:05d}" for i in range(2000)).encode()[:PEEK_BYTES]
    with pytest.raises(DataError, match="longer than 8192 bytes"):
        read_header(head, "big.csv")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(DataError, match="empty"):
        read_header(b"", "empty.csv")
