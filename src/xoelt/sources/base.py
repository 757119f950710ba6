"""The source kit's core: the :class:`Source` base, the registry, the CSV sink, secret refs.

A source is one class: its config type and its YAML name are given in the class statement,
which also registers it (no decorator, no second list to keep in step)::

    class SproutSocialSource(Source[SproutSocialConfig], source_type="sprout_social_api"):
        def extract(self, sink: CsvSink) -> None:
            ...  # self.config is a SproutSocialConfig

The loader validates a block with ``get_source(t).Config.model_validate(block, context=…)``,
``plan`` shows ``get_source(t).describe(config, window)``, and the extract stage runs
``cls(config, ExtractContext(...)).extract(CsvSink(path))``.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TextIO, TypeVar, get_args, get_origin

from pydantic import BaseModel

from xoelt.config.types import SecretRef, StrictModel
from xoelt.errors import SourceError
from xoelt.findings import Finding
from xoelt.progress import ExtractProgress, ProgressListener, Reporter
from xoelt.sources.csvio import CsvReader, format_columns, format_row
from xoelt.sources.http import RetryConfig
from xoelt.sources.parts import Part, PartMark, PartStream, part_name

if TYPE_CHECKING:
    from xoelt.sources.ratelimit import SharedLimits
    from xoelt.storage.base import ObjectStore
    from xoelt.timewindow import TimeWindow

ConfigT = TypeVar("ConfigT", bound=StrictModel)

REGISTRY: dict[str, type[Source[Any]]] = {}
"""``source_type`` → class, filled as source modules are imported (see :mod:`xoelt.sources`)."""


@dataclass
class ExtractContext:
    """What an extractor may use: its window, the object store, the environment, a logger.

    ``note`` records a :class:`~xoelt.findings.Finding` (an answer split at a cap, items
    left out): it goes to the ingest manifest and the extract stage's ledger row.
    ``progress`` counts rows, bytes and pages for whoever listens (``on_progress``: the CLI's
    bar on a TTY). ``typed_columns``: the silver columns given a type other than VARCHAR, by their
    warehouse names (what :func:`xoelt.columns.standardise` makes of a header), for a
    source whose values depend on it (Google Sheets reads those unformatted). ``limits``:
    where rate limits shared across processes live (the target's store, see
    :mod:`xoelt.sources.ratelimit`); None keeps every limit within this process.
    """

    source: str
    window: TimeWindow
    run_id: str
    store: ObjectStore
    env: Mapping[str, str]
    log: Any
    workdir: Path
    findings: list[Finding] = field(default_factory=list)
    typed_columns: frozenset[str] = frozenset()
    on_progress: ProgressListener | None = None
    limits: SharedLimits | None = None

    def __post_init__(self) -> None:
        self.tracker = ExtractProgress(self.source, self.on_progress)

    def progress(self, *, rows: int = 0, bytes: int = 0, pages: int = 0) -> None:
        """Count rows written, bytes of CSV and API pages (see :mod:`xoelt.progress`).

        The sink and the HTTP client call this; a source needs to only for work neither
        sees (pages read some other way).
        """
        self.tracker.add(rows=rows, bytes=bytes, pages=pages)

    def note(self, finding: Finding) -> None:
        """Keep ``finding`` for the ledger (and log it, at its severity)."""
        self.findings.append(finding)
        log = self.log.warning if finding.severity != "info" else self.log.info
        log(finding.message, kind=finding.kind, count=finding.count)


class CsvSink:
    """Streams rows, already in header order, to a local CSV file (constant memory).

    The file follows xoelt's CSV convention (:mod:`xoelt.sources.csvio`): ``None`` is a
    missing value (an empty unquoted field, NULL in bronze) and ``''`` an empty string
    (``""``, an empty string in bronze); give each what the source said.

    Given ``fmt`` (``csv.gz`` or ``csv``) it writes parts beside ``path``
    (``<stem>.part-00000.<fmt>``, …; :mod:`xoelt.sources.parts`), starting the next part, with
    the header, before the first row that comes once a part holds ``part_bytes``; without,
    one plain file at ``path``. The files are private temp files; the extract stage publishes
    them to the ingest store only after the extractor returns, so a failed extraction never
    leaves a partial object behind.
    ``details`` ends up in the ingest manifest (e.g. which upload files were taken).
    ``progress`` (the extraction's :meth:`ExtractContext.progress`) hears rows and bytes
    written: after each page, every 4,096 single rows, and at :meth:`close`.
    """

    def __init__(
        self,
        path: Path,
        progress: Reporter | None = None,
        *,
        fmt: str | None = None,
        part_bytes: int | None = None,
        gzip_level: int = 1,
    ) -> None:
        self.progress = progress
        self._reported = (0, 0)  # rows, bytes already reported
        self.rows = 0
        self.fieldnames: list[str] | None = None
        self.details: dict[str, Any] = {}
        self._file: TextIO | None = None
        self._stream: PartStream | None = None
        self._writer: Any = None
        self._single = False
        self._part_start = 0  # rows written before the current part
        # fmt None: one plain file at ``path`` (the sink as a plain CSV writer); else parts
        # named ``<stem>.part-NNNNN.<fmt>`` beside it, rolled at ``part_bytes``.
        self.fmt = fmt
        self.part_bytes = part_bytes
        self.gzip_level = gzip_level if fmt == "csv.gz" else None
        self._base = path
        self.path = path if fmt is None else path.with_name(part_name(path.stem, 0, fmt))

    def _path_of(self, index: int) -> Path:
        if self.fmt is None:
            return self._base
        return self._base.with_name(part_name(self._base.stem, index, self.fmt))

    @property
    def parts(self) -> list[Part]:
        """The part files written (one for a small window), with their rows and sizes;
        complete after :meth:`close`."""
        return [] if self._stream is None else list(self._stream.parts)

    def open(self, fieldnames: Sequence[str]) -> None:
        """Write the header; must be called once, before any row."""
        if self.fieldnames is not None:
            if list(fieldnames) != self.fieldnames:
                raise SourceError(
                    f"columns changed mid-extract: {self.fieldnames} then {list(fieldnames)}"
                )
            return
        if len(set(fieldnames)) != len(fieldnames):
            raise SourceError(f"duplicate column names in source header: {list(fieldnames)}")
        self.fieldnames = list(fieldnames)
        self._stream = PartStream(self._path_of, level=self.gzip_level, part_bytes=self.part_bytes)
        # A large buffer: a row is a few hundred bytes, and 8 KB flushes cost a syscall each
        # (smaller only for tiny parts, so a part can fill before its buffer does).
        buffer = min(1 << 20, max(self.part_bytes or 1 << 20, 4096))
        self._file = io.TextIOWrapper(
            io.BufferedWriter(self._stream, buffer_size=buffer),
            encoding="utf-8",
            newline="",
            write_through=False,
        )
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.fieldnames)
        self._single = len(self.fieldnames) == 1

    def _roll(self) -> None:
        """The current part is full and a row is coming: finish the part and start the next
        with the header (so no part is ever empty but a window's only one)."""
        assert self._stream is not None and self._file is not None
        self._file.flush()
        self._stream.parts[-1].rows = self.rows - self._part_start
        self._part_start = self.rows
        self._stream.next_part()
        self._writer.writerow(self.fieldnames)

    def write_values(self, values: Sequence[Any]) -> None:
        """One row in header order; a row of another width is an error (no silent loss)."""
        if self._writer is None or self.fieldnames is None:
            raise SourceError("CsvSink.open(fieldnames) must be called before writing rows")
        if len(values) != len(self.fieldnames):
            raise SourceError(
                f"row {self.rows + 1} has {len(values)} fields, the header has {len(self.fieldnames)}"
            )
        if self._stream is not None and self._stream.full:  # roll before a row, never after
            self._roll()
        if "" in values:  # inline, not self._write: this runs once per row of a user file
            self._text_file.write(format_row(values))
        elif self._single and values[0] is None:
            self._write(values, self.rows + 1)  # refuses it
        else:
            self._writer.writerow(values)
        self.rows += 1
        if not self.rows & 0xFFF and self.progress is not None:
            self._report()

    def write_many_values(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows in header order, written in one call (a page of API results)."""
        if self._writer is None or self.fieldnames is None:
            raise SourceError("CsvSink.open(fieldnames) must be called before writing rows")
        if self._stream is not None and self._stream.full and rows:
            self._roll()
        width = len(self.fieldnames)
        # Both checks iterate in C (map over builtins): a page costs no Python loop per row.
        if any(n != width for n in set(map(len, rows))):
            for i, values in enumerate(rows):
                if len(values) != width:
                    raise SourceError(
                        f"row {self.rows + i + 1} has {len(values)} fields, the header has {width}"
                    )
        if width > 1 and not any(map(operator.contains, rows, itertools.repeat(""))):
            self._writer.writerows(rows)
        else:
            for i, values in enumerate(rows):
                self._write(values, self.rows + i + 1)
        self.rows += len(rows)
        if self.progress is not None:
            self._report()

    def write_columns(self, columns: Sequence[Sequence[Any]]) -> None:
        """A page given column by column, in header order: the bytes :meth:`write_many_values`
        writes for its rows (``zip(*columns)``), formatted at once by
        :func:`~xoelt.sources.csvio.format_columns` (API pages, where the per-row writer is
        most of the CPU)."""
        if self._writer is None or self.fieldnames is None:
            raise SourceError("CsvSink.open(fieldnames) must be called before writing rows")
        width = len(self.fieldnames)
        if len(columns) != width:
            raise SourceError(f"a page has {len(columns)} columns, the header has {width}")
        count = len(columns[0])
        if any(len(column) != count for column in columns):
            raise SourceError(f"a page's columns differ in length: {list(map(len, columns))}")
        if width == 1 and None in columns[0]:
            self._write([None], self.rows + list(columns[0]).index(None) + 1)  # refuses it
        if self._stream is not None and self._stream.full and count:  # as write_many_values
            self._roll()
        self._text_file.write(format_columns(columns))
        self.rows += count
        if self.progress is not None:
            self._report()

    def _report(self) -> None:
        """Tell ``progress`` the rows and bytes written since it last heard."""
        assert self.progress is not None and self._file is not None
        size = self._file.tell()  # flushes the text layer into the 1 MB buffer, not to disk
        rows, written = self._reported
        self._reported = (self.rows, size)
        self.progress(rows=self.rows - rows, bytes=size - written)

    def _write(self, values: Sequence[Any], number: int) -> None:
        # csv.writer writes '' and None alike (an empty field): rows with an empty string
        # are formatted by the convention's own writer, on the same buffered file.
        if "" in values:
            self._text_file.write(format_row(values))
        elif len(values) == 1 and values[0] is None:
            raise SourceError(
                f"row {number}: a one-column file cannot hold a missing value (the line "
                "would be blank)"
            )
        else:
            self._writer.writerow(values)

    def mark(self) -> tuple[PartMark, int]:
        """Where the output is now, as (position, rows): :meth:`rewind` goes back to it."""
        self._text_file.flush()
        assert self._stream is not None
        return self._stream.mark(), self.rows

    def write_raw(self, data: bytes, rows: int) -> None:
        """``rows`` complete records that are already in xoelt's CSV convention, as bytes.

        The caller vouches for them (:mod:`xoelt.sources.csvcopy` proves it for the bytes
        it copies); they go straight to the file after the text written so far.
        """
        if self._stream is not None and self._stream.full and rows:
            self._roll()
        self._text_file.flush()
        self._text_file.buffer.write(data)
        self.rows += rows
        if self.progress is not None:
            self._report()

    def rewind(self, mark: tuple[PartMark, int]) -> None:
        """Drop everything written since :meth:`mark` gave ``mark`` (a byte copy that fell
        back), parts started since included. Progress already reported is not taken back:
        it may over-count the rows written again."""
        position, rows = mark
        self._text_file.flush()
        assert self._stream is not None
        self._stream.rewind(position)
        self.rows = rows
        self._part_start = sum(p.rows for p in self._stream.parts[:-1])
        self._reported = (min(self._reported[0], rows), min(self._reported[1], position.position))

    @property
    def _text_file(self) -> TextIO:
        assert self._file is not None  # open() ran: every writer checks _writer first
        return self._file

    def close(self) -> None:
        """Flush and close the file (safe to call twice, or before :meth:`open`)."""
        if self._file is not None:
            if self.progress is not None:
                self._report()
            self._file.flush()
            assert self._stream is not None
            self._stream.parts[-1].rows = self.rows - self._part_start
            self._file.close()  # closes the part stream: the last part's gzip trailer
            self._file = None


def copy_csv_rows(
    reader: Any,
    header: Sequence[str],
    sink: CsvSink,
    where: str,
    *,
    columns: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> None:
    """Copy the rows left in a reader (its header already read) into ``sink``.

    With a :class:`~xoelt.sources.csvio.CsvReader` an empty string (``""``) stays an empty
    string and an empty unquoted field stays a missing value. A plain ``csv.reader`` cannot
    tell them apart: every empty field it gives is taken as missing (NULL in bronze).
    Values are mapped by name onto ``columns`` (default: the header itself; a column the
    file lacks is missing, ``None``) and ``extra`` values are appended. Blank lines are
    skipped; a row whose width differs from the header is an error naming ``where`` and
    the line.
    """
    columns = list(header) if columns is None else columns
    order = [header.index(c) if c in header else -1 for c in columns]
    same = order == list(range(len(header))) and not extra
    tail = list(extra)
    width = len(header)
    knows_quotes = isinstance(reader, CsvReader)
    for row in reader:
        if not row:
            continue
        if len(row) != width:
            raise SourceError(
                f"{where} line {reader.line_num}: {len(row)} fields, the header has {width}"
            )
        if not knows_quotes and "" in row:
            row = [None if value == "" else value for value in row]
        sink.write_values(row if same else [row[i] if i >= 0 else None for i in order] + tail)


def secret_ref(configured: SecretRef | None, var: str, key: str) -> SecretRef:
    """The configured ``${VAR}`` reference, else the documented variable ``var``.

    ``key`` names the config key in the "not set" error of the documented default (a
    configured reference names only its own variable, which the user wrote).
    """
    return configured or SecretRef(var, key)


def env_label(configured: object, var: str) -> str:
    """What ``plan`` shows for a value that may come from the environment at run time.

    The configured value (a ``${VAR}`` reference shows as itself, never its value), else
    ``${var}``, the documented variable.
    """
    return str(configured or SecretRef(var))


class Source(ABC, Generic[ConfigT]):
    """An extractor: validated config in, rows out through a :class:`CsvSink`.

    Subclass as ``Source[MyConfig]`` with ``source_type="my_api"`` to register it; ``Config``
    is then ``MyConfig`` and ``self.config`` is typed as one. A subclass without
    ``source_type`` is a shared base and is not registered.
    """

    source_type: ClassVar[str]
    Config: ClassVar[type[StrictModel]]
    # The extract output format when the source's ``output.format`` is unset.
    output_format: ClassVar[str] = "csv.gz"

    def __init_subclass__(cls, *, source_type: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = _config_type(cls)
        if config is not None:
            cls.Config = config
        if source_type is None:
            return
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__qualname__}: subclass Source[<its config model>]")
        known = REGISTRY.get(source_type)
        if known is not None and _name(known) != _name(cls):
            raise TypeError(f"source_type {source_type!r} is taken by {_name(known)}")
        cls.source_type = source_type
        REGISTRY[source_type] = cls

    def __init__(self, config: ConfigT, ctx: ExtractContext) -> None:
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def extract(self, sink: CsvSink) -> None:
        """Stream the window's rows into ``sink``; raise SourceError on failure."""

    @classmethod
    def describe(cls, config: ConfigT, window: TimeWindow) -> dict[str, Any]:
        """What ``plan`` shows about the requests this source will make (no secrets)."""
        return {}

    @classmethod
    def credential_vars(cls, config: ConfigT) -> list[str]:
        """The environment variables this source's credentials come from (names only, for
        ``doctor``): by default every ``${VAR}`` secret in its config. Sources with
        documented default variables add them."""
        return [ref.var for ref in secret_refs(config)]

    def probe(self, timeout: float) -> str | None:
        """One cheap authenticated call proving reachability and credentials (``doctor``).

        Returns what answered (no secrets); raises SourceError/ConfigError on failure, within
        about ``timeout`` seconds. None: this source type has no probe.
        """
        return None


def secret_refs(model: BaseModel) -> list[SecretRef]:
    """Every :class:`SecretRef` value in a config model, nested models included."""
    found: list[SecretRef] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, SecretRef):
                found.append(item)
            elif isinstance(item, BaseModel):
                found.extend(secret_refs(item))
    return found


def probe_retry(timeout: float) -> RetryConfig:
    """A probe's retry policy: one quick second try, each attempt bounded by ``timeout``."""
    return RetryConfig(
        max_attempts=2, initial_backoff=0.2, max_backoff=1.0, timeout_seconds=max(timeout, 0.1)
    )


def _config_type(cls: type) -> type[StrictModel] | None:
    """``MyConfig`` when ``cls`` is declared as ``class X(Source[MyConfig])``."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Source):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], StrictModel):
                return args[0]
    return None


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
