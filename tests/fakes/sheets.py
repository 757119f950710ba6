"""A fake Sheets API ``values.get`` (plus Google's token endpoint), route ``sheets.values``.

``GET /v4/spreadsheets/{id}/values/{range}``: the range path segment is decoded and parsed
as A1 the way Sheets does (an unquoted sheet name with a space is a 400 "Unable to parse
range"). It trims trailing empty cells and rows like the real API, and omits ``values`` for
an empty range; the end of a range is ignored.

Cells render as ``valueRenderOption`` asks: a :class:`Cell` holds a value and the text the
sheet shows for it (``Cell(1234.5, "$1,234.50")``), as the real API keeps a value and its
number format. ``FORMATTED_VALUE`` (the default) gives the text; ``UNFORMATTED_VALUE`` the
value, except that a date cell gives its text only with ``dateTimeRenderOption=
FORMATTED_STRING`` (its serial number otherwise); ``FORMULA`` the formula if any. A plain
Python value is a cell in the General format (a whole float shows without ``.0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.api import Request, Response, route
from tests.fakes.google import GoogleApi, google_error

SCOPES = {
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive.readonly",
}


def _parse_a1(a1: str) -> tuple[str, int, int] | None:
    """(sheet title, first column index, first row) of an A1 range; None if unparseable."""
    if a1.startswith("'"):
        match = re.fullmatch(r"'((?:[^']|'')*)'(?:!(.*))?", a1)
        if not match:
            return None
        title, cells = match.group(1).replace("''", "'"), match.group(2) or ""
    else:
        title, _, cells = a1.partition("!")
        if re.search(r"[\s']", title):
            return None
    start = re.match(r"([A-Z]*)(\d*)", cells)
    assert start is not None
    column = ord(start.group(1)[0]) - 65 if start.group(1) else 0
    return title, column, int(start.group(2) or 1)


@dataclass(frozen=True)
class Cell:
    """A cell: its value, the text its format shows, whether it is a date, its formula."""

    value: Any
    shown: str
    date: bool = False
    formula: str | None = None


def _formatted(value: Any) -> str:
    if isinstance(value, Cell):
        return value.shown
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _rendered(value: Any, option: str, dates: str) -> Any:
    """One cell as ``valueRenderOption`` / ``dateTimeRenderOption`` ask."""
    if option == "FORMATTED_VALUE":
        return _formatted(value)
    if not isinstance(value, Cell):
        return value
    if option == "FORMULA" and value.formula:
        return value.formula
    if value.date and dates == "FORMATTED_STRING":
        return value.shown
    return value.value


def _trim(row: list[Any]) -> list[Any]:
    row = list(row)
    while row and row[-1] in ("", None):
        row.pop()
    return row


class FakeSheets(GoogleApi):
    """Spreadsheets as ``{spreadsheet id: {sheet title: rows}}`` in :attr:`sheets`."""

    def setup(self) -> None:
        """No spreadsheets (and fresh token-endpoint state)."""
        super().setup()
        self.sheets: dict[str, dict[str, list[list[Any]]]] = {}

    @route("GET", "/v4/spreadsheets/{id}/values/{range}", "sheets.values")
    def values(self, request: Request) -> Response:
        """The cells of an A1 range, rows major, formatted unless asked otherwise."""
        if (refused := self.refuse(request, SCOPES)) is not None:
            return refused
        spreadsheet = self.sheets.get(request.params["id"])
        if spreadsheet is None:
            body = google_error(404, "Requested entity was not found.", status="NOT_FOUND")
            return Response(404, json=body)
        if request.query.get("majorDimension") != ["ROWS"]:
            return Response(
                400, json=google_error(400, "majorDimension=ROWS expected by this fake")
            )
        a1 = request.params["range"]
        parsed = _parse_a1(a1)
        if parsed is None or parsed[0] not in spreadsheet:
            body = google_error(400, f"Unable to parse range: {a1}", status="INVALID_ARGUMENT")
            return Response(400, json=body)
        title, first_col, first_row = parsed
        rows = [row[first_col:] for row in spreadsheet[title][first_row - 1 :]]
        option = request.arg("valueRenderOption", "FORMATTED_VALUE") or ""
        dates = request.arg("dateTimeRenderOption", "SERIAL_NUMBER") or ""
        if option not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA") or dates not in (
            "SERIAL_NUMBER",
            "FORMATTED_STRING",
        ):
            return Response(400, json=google_error(400, "Invalid render option"))
        rows = [[_rendered(v, option, dates) for v in row] for row in rows]
        rows = [_trim(row) for row in rows]
        while rows and not rows[-1]:
            rows.pop()
        name = f"'{title.replace(chr(39), chr(39) * 2)}'" if re.search(r"\W", title) else title
        width = max((len(r) for r in rows), default=1)
        last_row = first_row + max(len(rows), 1) - 1
        answer: dict[str, Any] = {
            "range": f"{name}!{chr(65 + first_col)}{first_row}:"
            f"{chr(64 + first_col + width)}{last_row}",
            "majorDimension": "ROWS",
        }
        if rows:
            answer["values"] = rows
        return Response(json=answer)
