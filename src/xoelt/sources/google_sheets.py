"""``google_sheets``: one range of a Google Sheet, read as a table (first row = header).

One request per run: ``GET /v4/spreadsheets/{spreadsheetId}/values/{range}`` with the range
URL-encoded as one path segment, ``majorDimension=ROWS`` and the configured render options.
The range is ``sheet`` (always single-quoted, ``'`` doubled, so names with spaces or
punctuation work) plus optional ``cells`` (``A:F``, ``A1:F500``), or a raw A1 ``range``.

A sheet has no time in its data: every run reads the whole range as it is at that moment.
The window only decides which partition the snapshot fills, so use
``load_strategy: full_refresh`` (immutable daily snapshots in silver). The manifest records
when the snapshot was taken.

Shape rules (Sheets leaves out trailing empty cells and rows):
- a short row is padded to the header's width; a blank cell (answered as ``""`` between
  values, left out at the end of a row) is written as a missing value, NULL in bronze;
- a row with a value beyond the header's last column is an error naming the row and cell
  (inventing column names would change the table's schema silently);
- a row with no values at all (a blank spacer row) is skipped and counted in the manifest;
- an empty or duplicate header cell is an error naming the cell;
- an empty range (no ``values``) has no header and is an error; a header alone is 0 rows.
With ``UNFORMATTED_VALUE``/``FORMULA`` numbers and booleans arrive typed and are written as
text (``TRUE``/``FALSE``; a whole number without ``.0``, others as the shortest decimal that
reads back the same, never in exponent form: 1234.5 → ``1234.5``, 1e-07 → ``0.0000001``).

**Typed columns.** The default ``FORMATTED_VALUE`` is what the sheet shows ("$1,234.00",
"25%"), which silver's casts cannot read. So when silver gives a column of the range a type
(``ExtractContext.typed_columns``, matched on the header's warehouse names), the range is read
a second time with ``UNFORMATTED_VALUE`` and ``dateTimeRenderOption=FORMATTED_STRING`` (raw
numbers and booleans; dates as the sheet formats them), and those columns take their cells
from it; the others keep the configured rendering. (One read is enough when the configured
options already are those two.) The two reads must agree on the header and the number of
rows; if the sheet changed in between they are taken again once, then the run fails.
Memory: each read's JSON answer is held once (the API does not paginate; Google advises
answers under ~2 MB), rows are streamed out.
"""

from __future__ import annotations

import json
import re
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator, model_validator

from xoelt.columns import standardise
from xoelt.config.types import BaseUrl
from xoelt.errors import SourceError
from xoelt.sources._google import (
    GoogleApiClient,
    GoogleAuth,
    GoogleAuthConfig,
    credentials_path,
    describe_credentials,
    probe_session,
)
from xoelt.sources._google import credential_vars as google_credential_vars
from xoelt.sources.base import CsvSink, Source
from xoelt.sources.http import shared_limiter
from xoelt.timewindow import TimeWindow

SHEETS_BASE = "https://sheets.googleapis.com"
SHEETS_READONLY = "https://www.googleapis.com/auth/spreadsheets.readonly"
# Read requests: 60 per minute per user per project (300 per project).
READS_PER_MINUTE = 60
TYPED_RENDER = {
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "FORMATTED_STRING",
}
_CELLS = re.compile(r"^[A-Za-z]{0,3}\d*(:[A-Za-z]{0,3}\d*)?$")
_START = re.compile(r"^\$?([A-Za-z]{1,3})?\$?(\d+)?")


class GoogleSheetsConfig(GoogleAuthConfig):
    """The ``extractor:`` block of a ``google_sheets`` source."""

    spreadsheet_id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    sheet: str | None = None
    cells: str | None = None
    range: str | None = None
    value_render_option: Literal["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"] = (
        "FORMATTED_VALUE"
    )
    date_time_render_option: Literal["SERIAL_NUMBER", "FORMATTED_STRING"] | None = None
    scope: str = SHEETS_READONLY
    base_url: BaseUrl = SHEETS_BASE

    @field_validator("cells")
    @classmethod
    def _a1_cells(cls, value: str | None) -> str | None:
        if value is not None and (not value or not _CELLS.match(value)):
            raise ValueError(f"cells {value!r} is not an A1 range such as A:F or A1:F500")
        return value

    @model_validator(mode="after")
    def _one_range(self) -> GoogleSheetsConfig:
        if (self.sheet is None) == (self.range is None):
            raise ValueError(
                "give exactly one of sheet (a tab name, optionally with cells) or range (A1 notation)"
            )
        if self.cells is not None and self.sheet is None:
            raise ValueError("cells goes with sheet; put the whole A1 range in range instead")
        if self.sheet is not None and not self.sheet.strip():
            raise ValueError("sheet must be a tab name")
        return self


def a1_range(config: GoogleSheetsConfig) -> str:
    """The A1 range to read: ``'Sheet ''name'''!A:F`` (sheet always quoted) or ``range``."""
    if config.range is not None:
        return config.range
    assert config.sheet is not None
    quoted = "'" + config.sheet.replace("'", "''") + "'"
    return f"{quoted}!{config.cells}" if config.cells else quoted


def values_url(config: GoogleSheetsConfig) -> str:
    """The values.get URL with the range encoded as a single path segment."""
    return f"{config.base_url}/v4/spreadsheets/{config.spreadsheet_id}/values/{quote(a1_range(config), safe='')}"


def column_letter(index: int) -> str:
    """``0`` → ``A``, ``26`` → ``AA``."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def column_index(letters: str) -> int:
    """``A`` → ``0``, ``AA`` → ``26``."""
    index = 0
    for ch in letters.upper():
        index = index * 26 + ord(ch) - 64
    return index - 1


def range_start(returned: str) -> tuple[int, int]:
    """(column index, row number) of the top-left cell of a returned range like ``'S'!B3:F9``."""
    cells = returned.rsplit("!", 1)[-1] if "!" in returned else ""
    match = _START.match(cells)
    column = match.group(1) if match else None
    row = match.group(2) if match else None
    return (column_index(column) if column else 0, int(row) if row else 1)


def cell_text(value: Any) -> str:
    """A cell as CSV text (typed values arrive with UNFORMATTED_VALUE or FORMULA)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    return json.dumps(value, ensure_ascii=False)


def number_text(value: float) -> str:
    """A float as silver's casts read it: no ``.0`` on whole numbers, no exponent, and the
    shortest digits that read back as the same float (so no binary artefacts)."""
    if float(value).is_integer():
        return str(int(value))
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


class GoogleSheetsSource(Source[GoogleSheetsConfig], source_type="google_sheets"):
    """A snapshot of one sheet range; the first row is the header."""

    @classmethod
    def describe(cls, config: GoogleSheetsConfig, window: TimeWindow) -> dict[str, Any]:
        return {
            "request": f"GET {values_url(config)}",
            "range": a1_range(config),
            "value_render_option": config.value_render_option,
            "typed_columns": "read again with UNFORMATTED_VALUE and FORMATTED_STRING dates",
            "mode": "snapshot: the whole range as it is at run time; the window only names the partition",
            **describe_credentials(config),
        }

    def extract(self, sink: CsvSink) -> None:
        cfg = self.config
        path = credentials_path(cfg.credentials_file, self.ctx.env)
        auth = GoogleAuth(path, [cfg.scope], subject=cfg.subject, retry=cfg.retry, log=self.ctx.log)
        limiter = shared_limiter(
            f"sheets:{cfg.subject or auth.identity}", per_minute=READS_PER_MINUTE
        )
        params = {"majorDimension": "ROWS", "valueRenderOption": cfg.value_render_option}
        if cfg.date_time_render_option:
            params["dateTimeRenderOption"] = cfg.date_time_render_option
        url = values_url(cfg)
        snapshot_at = datetime.now(UTC).isoformat(timespec="seconds")
        with (
            closing(auth),
            closing(auth.client(cfg.base_url, limiter=limiter, retry=cfg.retry)) as api,
        ):
            returned, values, header, typed, raw, reads = self._read(api, url, params)
        first_col, first_row = range_start(returned)
        sink.open(header)
        blank = 0
        for offset, formatted in enumerate(values[1:], start=1):
            cells = [cell_text(v) for v in formatted]
            if raw is not None:
                unformatted = raw[offset]
                cells += [""] * (len(header) - len(cells))
                for i in typed:
                    cells[i] = cell_text(unformatted[i]) if i < len(unformatted) else ""
            if not any(cells):
                blank += 1
                continue
            if len(cells) > len(header):
                extra = next((i for i in range(len(header), len(cells)) if cells[i]), None)
                if extra is not None:
                    cell = f"{column_letter(first_col + extra)}{first_row + offset}"
                    raise SourceError(
                        f"{returned}: row {first_row + offset} has a value in {cell}, beyond the "
                        f"header's {len(header)} columns (add a header cell or narrow the range)"
                    )
            cells = cells[: len(header)] + [""] * (len(header) - len(cells))
            # A blank cell is no value (NULL), not an empty string: the values API answers
            # "" for a blank cell between values and nothing for trailing ones.
            sink.write_values([c if c != "" else None for c in cells])
        sink.details.update(
            spreadsheet_id=cfg.spreadsheet_id,
            range_requested=a1_range(cfg),
            range_returned=returned,
            value_render_option=cfg.value_render_option,
            unformatted_columns=[header[i] for i in typed],
            reads=reads,
            snapshot_at=snapshot_at,
            blank_rows_skipped=blank,
        )

    def _read(
        self, api: GoogleApiClient, url: str, params: dict[str, str]
    ) -> tuple[str, list[list[Any]], list[str], list[int], list[list[Any]] | None, int]:
        """(range returned, rows, header, typed column indexes, their unformatted rows, reads).

        The unformatted rows are None when one read serves every column.
        """
        where = f"GET {url}"
        one_read = all(params.get(k) == v for k, v in TYPED_RENDER.items())
        reads = 0
        for _attempt in range(2):
            returned, values = self._values(api.json("GET", url, params=params), where)
            reads += 1
            first_col, first_row = range_start(returned)
            header = self._header(values[0], first_col, first_row, returned)
            names = standardise(header)
            typed = [i for i, n in enumerate(names) if n in self.ctx.typed_columns]
            if not typed or one_read:
                return returned, values, header, typed, None, reads
            again = {**params, **TYPED_RENDER}
            _, raw = self._values(api.json("GET", url, params=again), where)
            reads += 1
            raw_header = [cell_text(v) for v in raw[0]]
            if len(raw) == len(values) and raw_header == header:
                return returned, values, header, typed, raw, reads
        raise SourceError(
            f"{where}: the formatted and unformatted reads of {returned} disagree ({len(values)} "
            f"and {len(raw)} rows) twice: the sheet is changing, or cells format as empty; "
            "run again, or set value_render_option: UNFORMATTED_VALUE and "
            "date_time_render_option: FORMATTED_STRING to read it once"
        )

    def _values(self, body: Any, where: str) -> tuple[str, list[list[Any]]]:
        """(range returned, rows) of a ValueRange answer; no header row is an error."""
        if not isinstance(body, dict) or body.get("majorDimension", "ROWS") != "ROWS":
            raise SourceError(f"{where}: unexpected answer (not a ROWS ValueRange)")
        returned = str(body.get("range") or a1_range(self.config))
        values = body.get("values")
        if not values:
            raise SourceError(
                f"{where}: range {returned} is empty, so there is no header row "
                "(the first row of the range must hold the column names)"
            )
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            raise SourceError(f"{where}: unexpected answer (values is not a list of rows)")
        return returned, values

    @staticmethod
    def _header(raw: list[Any], first_col: int, first_row: int, returned: str) -> list[str]:
        header = [cell_text(v) for v in raw]
        seen: dict[str, str] = {}
        for i, name in enumerate(header):
            cell = f"{column_letter(first_col + i)}{first_row}"
            if not name.strip():
                raise SourceError(
                    f"{returned}: header cell {cell} is empty; every column needs a name"
                )
            if name in seen:
                raise SourceError(
                    f"{returned}: header cells {seen[name]} and {cell} are both {name!r}"
                )
            seen[name] = cell
        return header

    @classmethod
    def credential_vars(cls, config: GoogleSheetsConfig) -> list[str]:
        return google_credential_vars(config.credentials_file)

    def probe(self, timeout: float) -> str:
        """``values.get`` of the range's first cell: the token works and the sheet is shared."""
        cfg = self.config
        sheet, bang, cells = a1_range(cfg).rpartition("!")
        if not bang:  # a range without "!": cells of the first sheet, or a sheet name alone
            sheet, cells = ("", cells) if _CELLS.match(cells) else (cells, "")
        column, row = range_start(f"x!{cells}")
        cell = f"{column_letter(column)}{row}"
        cell = f"{sheet}!{cell}" if sheet else cell
        url = f"{cfg.base_url}/v4/spreadsheets/{cfg.spreadsheet_id}/values/{quote(cell, safe='')}"
        with probe_session(
            cfg, self.ctx.env, self.ctx.log, "sheets", READS_PER_MINUTE, timeout
        ) as api:
            body = api.json("GET", url, params={"majorDimension": "ROWS"})
        if not isinstance(body, dict):
            raise SourceError(f"GET {url}: unexpected answer (not a ValueRange)")
        return f"GET values/{cell} of spreadsheet {cfg.spreadsheet_id}: HTTP 200"
