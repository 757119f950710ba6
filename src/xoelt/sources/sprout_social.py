"""``sprout_social_api``: Sprout Social messages (``POST /v1/{customer_id}/messages``) for a window.

One request per page of at most 100 messages, ``created_time:asc``, following
``paging.next_cursor`` until a response has no ``paging`` object (or no cursor). Every
page is written out before the next is fetched, so memory stays flat however long the day.

Columns are exactly the configured ``fields`` (known before the first page, so the header
never changes mid-file). A dotted field path (``from.name``, ``internal.tags.id``) is looked
up through the nested objects the API returns, mapping over lists on the way; a value that
is still an object or a list is written as compact JSON with sorted keys (the API's key
order cannot make two equal values differ), booleans as ``true``/``false``.

The window filter is ``created_time.in(<start>..<end>)`` with both ends as ISO datetimes in
the pipeline's zone *with their UTC offset*, and ``timezone`` set to the same zone: whether
Sprout reads the offset or reads the wall-clock time in ``timezone``, the instant is the same
(a bare date would mean midnight, and the docs disagree on ``..`` versus ``...``). Because
``..`` may include its end, each row's ``created_time`` is checked against the half-open
window and a row outside it is dropped and counted (``outside_window`` in the manifest),
so a message at exactly midnight lands in one day only. ``created_time`` and ``guid`` are
therefore always requested, even when they are not configured columns.

**Never truncated.** Sprout stops a query at 10,000 results ("results beyond 10,000 are
truncated"; see api-contracts.md). Its documented way past the cap is keyset paging: read in
a total order and filter after the last item seen. We do that on ``created_time`` (the one
filter the API documents for ranges; a ``guid`` greater-than filter is not documented): a
query that returns the cap is taken as cut, and the window is continued by a new query
``created_time.in(<second of its last message>..<end>)``, skipping the messages of that
second the previous query already gave (by ``guid``). Each continuation is a
``window_split`` finding (ledger, ``status``). A second holding 10,000 messages or more
cannot be continued and fails the run naming it, as does an answer that is not in
``created_time`` order (the keyset would then be unsound). Hence ``sort`` is fixed to
``created_time:asc``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain, islice, repeat
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from xoelt.config.types import BaseUrl, Secret, StrictModel
from xoelt.errors import ConfigError, SourceError
from xoelt.findings import Finding
from xoelt.sources.base import CsvSink, Source, env_label, secret_ref
from xoelt.sources.http import HttpClient, RetryConfig, decode_json
from xoelt.sources.paging import CursorPaginator
from xoelt.sources.prefetch import Prefetch
from xoelt.sources.ratelimit import RateLimits, limiter_for
from xoelt.timewindow import TimeWindow

TOKEN_ENV = "SPROUT_API_TOKEN"
CUSTOMER_ENV = "SPROUT_CUSTOMER_ID"
DOCUMENTED_PER_MINUTE = 60
LIMITS = RateLimits(per_minute=DOCUMENTED_PER_MINUTE)  # per customer account, every client
RESULT_CAP = 10_000  # results per query beyond which Sprout truncates (api-contracts.md)
SORT = ["created_time:asc"]  # the keyset order continuing past the cap relies on
ID = re.compile(r"^[A-Za-z0-9_-]+$")  # customer, group and profile ids (URL path, filters)
FIELD_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
FILTER = re.compile(r"^[A-Za-z0-9_.]+\.[a-z]+\(.*\)$", re.DOTALL)


def _customer_id(value: str) -> str:
    if not ID.match(value):
        raise ValueError(f"customer_id {value!r} must be letters, digits, '_' or '-'")
    return value


class SproutSocialConfig(StrictModel):
    """The ``extractor:`` block of a ``sprout_social_api`` source."""

    token: Secret | None = None  # ${VAR}; default ${SPROUT_API_TOKEN}
    customer_id: str | None = None  # default: $SPROUT_CUSTOMER_ID, read at run time
    base_url: BaseUrl = "https://api.sproutsocial.com"
    fields: list[str] = Field(min_length=1)
    group_id: str | int | None = None
    customer_profile_ids: list[str | int] = Field(default_factory=list)
    filters: list[str] = Field(default_factory=list)  # extra ``field.op(args)``, sent as written
    limit: int = Field(100, ge=1, le=100)
    sort: list[str] = Field(default_factory=lambda: list(SORT))
    range_separator: Literal["..", "..."] = ".."
    retry: RetryConfig = RetryConfig()
    # Never set above your contract: the limit is shared by every client of the account.
    rate_limit_per_minute: int = Field(DOCUMENTED_PER_MINUTE, ge=1)
    # Fields set here replace LIMITS (per_minute: the same as rate_limit_per_minute).
    rate_limit: RateLimits | None = None

    @model_validator(mode="after")
    def _one_per_minute(self) -> SproutSocialConfig:
        both = self.rate_limit is not None and "per_minute" in self.rate_limit.model_fields_set
        if both and "rate_limit_per_minute" in self.model_fields_set:
            raise ValueError("set either rate_limit_per_minute or rate_limit.per_minute, not both")
        return self

    @property
    def limits(self) -> RateLimits:
        """Sprout's documented limit with the configured overrides over it."""
        per_minute = RateLimits(per_minute=self.rate_limit_per_minute)
        return LIMITS.merged(per_minute).merged(self.rate_limit)

    @field_validator("customer_id")
    @classmethod
    def _cid(cls, value: str | None) -> str | None:
        return None if value is None else _customer_id(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if not FIELD_PATH.match(f)]
        if bad:
            raise ValueError(f"not a field path (name or dotted.name): {', '.join(bad)}")
        dupes = sorted({f for f in value if value.count(f) > 1})
        if dupes:
            raise ValueError(f"duplicate fields: {', '.join(dupes)}")
        return value

    @field_validator("group_id", "customer_profile_ids")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [] if value is None else [value]
        bad = [str(v) for v in items if not ID.match(str(v))]
        if bad:
            raise ValueError(f"not an id (letters, digits, '_' or '-'): {', '.join(bad)}")
        return value

    @field_validator("sort")
    @classmethod
    def _sort(cls, value: list[str]) -> list[str]:
        if value != SORT:
            raise ValueError(
                "must be [created_time:asc]: a query cut at Sprout's 10,000-result cap is "
                "continued after its last created_time, which needs that order"
            )
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: list[str]) -> list[str]:
        for item in value:
            if not FILTER.match(item):
                raise ValueError(f"filter {item!r} is not of the form field.op(args)")
            if item.startswith("created_time."):
                raise ValueError("created_time filters come from the pipeline's window")
            if item.startswith("message_id."):
                raise ValueError("message_id.eq(...) must be used alone; not for a window pull")
        return value


def window_filters(
    config: SproutSocialConfig, window: TimeWindow, since: datetime | None = None
) -> list[str]:
    """The ``filters`` array: window (from ``since``, a continuation), group, profiles, extras."""
    zone = window.start.tzinfo
    start = (since or window.start).astimezone(zone).isoformat(timespec="seconds")
    end = window.end.isoformat(timespec="seconds")
    out = [f"created_time.in({start}{config.range_separator}{end})"]
    if config.group_id is not None:
        out.append(f"group_id.eq({config.group_id})")
    if config.customer_profile_ids:
        out.append(f"customer_profile_id.eq({', '.join(map(str, config.customer_profile_ids))})")
    return out + list(config.filters)


def request_body(
    config: SproutSocialConfig, window: TimeWindow, since: datetime | None = None
) -> dict[str, Any]:
    """The first page's JSON body (later pages add ``page_cursor``)."""
    fields = list(config.fields)
    for needed in ("guid", "created_time"):  # the window check and the cap continuation
        if needed not in fields:
            fields.append(needed)
    return {
        "filters": window_filters(config, window, since),
        "fields": fields,
        "limit": config.limit,
        "sort": list(config.sort),
        "timezone": window.timezone,
    }


def _json(value: Any) -> str:
    """Compact JSON with sorted keys (orjson: ~10x the stdlib encoder on small objects)."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _render(value: Any) -> Any:
    """A non-string cell: JSON for objects and lists, ``true``/``false``, None as empty."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is dict or kind is list:
        return _json(value)
    return value


def _walk(value: Any, parts: tuple[str, ...]) -> Any:
    for i, part in enumerate(parts):
        if type(value) is list:
            return [_walk(item, parts[i:]) for item in value]
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value


_MISSING = object()
_PLAIN = frozenset({str, int, float, type(None)})  # cells the CSV writer takes as they are
_NESTED = frozenset({dict, list})
# ``YYYY-MM-DDTHH:MM:SSZ`` repeated: one C-level match over a page's stamps, joined, once
# each is known to be a 20-character string (the shape ``placement`` checks per message).
_CANONICAL_RUN = re.compile(r"(?:....-..-..T........Z)*", re.DOTALL)


def _render_column(column: list[Any]) -> list[Any]:
    """``_render`` over a column, skipped for a column of plain cells (checked in C)."""
    kinds = set(map(type, column))
    if kinds <= _PLAIN:
        return column
    if kinds <= {bool, type(None)}:
        return [None if v is None else "true" if v else "false" for v in column]
    if kinds <= _NESTED:  # JSON for every cell, in C (as ``_json`` does each)
        import orjson

        dumps = functools.partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)
        return list(map(bytes.decode, map(dumps, column)))
    return [v if type(v) is str else _render(v) for v in column]


def _dotted_column(data: list[dict[str, Any]], name: str, parts: tuple[str, ...]) -> list[Any]:
    """A dotted field of every message, as :meth:`RowMaker.row` finds it in each."""
    n = len(data)
    flat = list(map(dict.get, data, repeat(name, n), repeat(_MISSING, n)))
    if flat.count(_MISSING) != n:  # the API answered flat for some: per message
        return [
            v if v is not _MISSING else _walk(m, parts) for v, m in zip(flat, data, strict=True)
        ]
    values: list[Any] = data
    for i, part in enumerate(parts):
        kinds = set(map(type, values))
        if kinds == {dict}:
            values = list(map(dict.get, values, repeat(part, n)))
        elif list in kinds:  # mapping over lists from here on
            rest = parts[i:]
            if kinds == {list} and len(rest) == 1:  # e.g. tags.id: lists of objects, plucked
                items = list(chain.from_iterable(values))
                if set(map(type, items)) <= {dict}:
                    plucked = iter(list(map(dict.get, items, repeat(part, len(items)))))
                    return [list(islice(plucked, k)) for k in map(len, values)]
            return [_walk(v, rest) for v in values]  # the walk, per message
        else:
            values = [v.get(part) if type(v) is dict else None for v in values]
    return values


class RowMaker:
    """Turns messages into CSV rows of the configured fields and checks their window.

    :meth:`row` is the definition, one message at a time; :meth:`columns` gives the same
    cells for a whole page, column by column, which is what the extraction uses: it runs
    for every message, and per page the type checks, lookups and rendering become C loops
    (``map(dict.get, …)``, ``set(map(type, …))``) with Python code only for the columns
    that need it (JSON for objects and lists, ``true``/``false``, a walk through lists).
    ``created_time`` is compared as text when it has the API's canonical
    ``YYYY-MM-DDTHH:MM:SSZ`` form (parsed otherwise).
    """

    def __init__(self, fields: list[str], window: TimeWindow) -> None:
        self.names = list(fields)
        # A dotted path is looked up through nested objects unless the API answered flat.
        self.dotted = [(i, tuple(f.split("."))) for i, f in enumerate(fields) if "." in f]
        self.paths = [(f, tuple(f.split(".")) if "." in f else None) for f in fields]
        self.start = window.start.astimezone(UTC)
        self.end = window.end.astimezone(UTC)
        self.start_text = self.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.end_text = self.end.strftime("%Y-%m-%dT%H:%M:%SZ")

    def row(self, msg: dict[str, Any]) -> list[Any]:
        """The message's cells in header order."""
        values = list(map(msg.get, self.names))  # a C loop over the plain fields
        for i, parts in self.dotted:
            if values[i] is None and self.names[i] not in msg:
                values[i] = _walk(msg, parts)
        return [v if type(v) is str else _render(v) for v in values]

    def columns(self, data: list[dict[str, Any]]) -> list[list[Any]]:
        """The cells of ``data`` (messages, all dicts) column by column: ``row`` of each."""
        n = len(data)
        out = []
        for name, parts in self.paths:
            if parts is None:
                column = list(map(dict.get, data, repeat(name, n)))
            else:
                column = _dotted_column(data, name, parts)
            out.append(_render_column(column))
        return out

    def all_inside(self, data: list[dict[str, Any]]) -> bool:
        """Whether every message has a canonical ``created_time`` inside the window (the
        usual page: nothing to drop or count), checked without a Python loop per message."""
        stamps: list[Any] = list(map(dict.get, data, repeat("created_time", len(data))))
        if not stamps or set(map(type, stamps)) != {str} or set(map(len, stamps)) != {20}:
            return False
        if not _CANONICAL_RUN.fullmatch("".join(stamps)):
            return False
        return self.start_text <= min(stamps) and max(stamps) < self.end_text

    def placement(self, created: Any) -> int:
        """0 inside the window, 1 outside it, -1 no usable ``created_time`` (kept)."""
        if (
            type(created) is str
            and len(created) == 20
            and created[19] == "Z"
            and created[10] == "T"
            and created[4] == created[7] == "-"
        ):
            return 0 if self.start_text <= created < self.end_text else 1
        moment = _moment(created)
        if moment is None:
            return -1
        return 0 if self.start <= moment < self.end else 1


def _moment(created: Any) -> datetime | None:
    """``created_time`` as an aware instant (no offset means UTC), None if unusable."""
    if not isinstance(created, str):
        return None
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def second_of(created: Any) -> str | None:
    """The UTC second of a ``created_time`` as ``YYYY-MM-DDTHH:MM:SSZ`` (sorts as time)."""
    if type(created) is str and len(created) == 20 and created[19] == "Z":
        return created
    moment = _moment(created)
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tail:
    """The last second of one query's answer, and the guids the query gave in it.

    A query cut at the cap is continued from that second (inclusive, so nothing between two
    messages of one second can fall through); the continuation skips these guids.
    Also notices an answer out of ``created_time`` order, which would make that unsound.
    """

    def __init__(self) -> None:
        self.second: str | None = None
        self.guids: set[Any] = set()
        self.ordered = True

    def page(self, data: list[Any]) -> None:
        """Account for one page (its messages already checked to be objects).

        Per page, not per message: the order check compares the page with itself sorted
        (C speed on the canonical text form), and only the page's trailing second is walked.
        """
        n = len(data)
        stamps: list[Any] = list(map(dict.get, data, repeat("created_time", n)))
        # Every stamp a 20-character string ending in Z (checked in C: each 20th character).
        if (
            set(map(type, stamps)) == {str}
            and set(map(len, stamps)) == {20}
            and "".join(stamps)[19::20] == "Z" * n
        ):
            seconds: list[str | None] = stamps
            dated: list[str] = stamps
        else:
            seconds = [second_of(t) for t in stamps]
            dated = [t for t in seconds if t is not None]
        if not dated:
            return
        if dated != sorted(dated) or (self.second is not None and dated[0] < self.second):
            self.ordered = False
        last = dated[-1]
        if last != self.second:
            self.second, self.guids = last, set()
        for msg, second in zip(reversed(data), reversed(seconds), strict=True):
            if second is None:
                continue
            if second != last:
                break
            self.guids.add(msg.get("guid"))


UNREAD: Any = object()  # the cursor is not read from the tail: parse the answer for it


def cursor_ahead(raw: bytes) -> Any:
    """``paging.next_cursor`` of an answer, read from its last bytes without parsing the
    page: the answer must end with ``"paging":{…}}``, the object parsing as JSON. None: a
    ``paging`` object without a cursor (the last page); :data:`UNREAD` when the answer does
    not end that way (the caller parses it). Inside a JSON string a quote is escaped, so
    ``"paging":`` followed by one JSON value and the closing brace is a member of the
    top-level object, and the last one (which is the one a parser keeps)."""
    import orjson

    at = raw.rfind(b'"paging":', max(0, len(raw) - 4096))
    if at < 0:
        return UNREAD
    rest = raw[at + len(b'"paging":') :].rstrip()
    if not rest.endswith(b"}"):
        return UNREAD
    try:
        paging = orjson.loads(rest[:-1])
    except orjson.JSONDecodeError:
        return UNREAD
    if type(paging) is not dict:
        return UNREAD
    following = paging.get("next_cursor")
    if following is None or (type(following) is str and following):
        return following
    return UNREAD  # "" or not a string: the full parse says what is wrong


class Answer:
    """One page's answer as it came: decoded and checked by the thread that writes it
    (orjson holds the GIL for about a millisecond a page, which would otherwise delay the
    next request)."""

    __slots__ = ("_decoded", "ahead", "raw", "where")

    def __init__(self, raw: bytes, where: str) -> None:
        self.raw, self.where = raw, where
        self.ahead = cursor_ahead(raw)
        self._decoded: dict[str, Any] | None = None

    def decoded(self) -> dict[str, Any]:
        """The answer as a JSON object with a ``data`` array (parsed once); a clear error
        otherwise."""
        if self._decoded is not None:
            return self._decoded
        answer = decode_json(self.raw, self.where)
        if not isinstance(answer, dict):
            raise SourceError(f"{self.where}: expected a JSON object, got {type(answer).__name__}")
        if isinstance(answer.get("error"), str):
            raise SourceError(f"{self.where}: {answer['error'][:200]}")
        if not isinstance(answer.get("data"), list):
            raise SourceError(f"{self.where}: response has no 'data' array")
        self._decoded = answer
        return answer

    def cursor(self) -> str | None:
        """``paging.next_cursor`` of the decoded answer (None: the last page)."""
        paging = self.decoded().get("paging")
        following = paging.get("next_cursor") if isinstance(paging, dict) else None
        if following and not isinstance(following, str):
            raise SourceError(f"{self.where}: paging.next_cursor is not a string")
        return following or None

    def data(self) -> list[Any]:
        """The page's messages; when the next request went out on the cursor read ahead,
        the parsed answer must name the same one."""
        if self.ahead is not UNREAD and self.cursor() != self.ahead:
            raise SourceError(
                f"{self.where}: paging.next_cursor differs from the one read from the "
                "answer's end (a malformed answer)"
            )
        return self.decoded()["data"]


class SproutSocialSource(Source[SproutSocialConfig], source_type="sprout_social_api"):
    """Sprout Social messages created in the window, one row per message."""

    @classmethod
    def describe(cls, config: SproutSocialConfig, window: TimeWindow) -> dict[str, Any]:
        customer = env_label(config.customer_id, CUSTOMER_ENV)
        return {
            "request": f"POST {config.base_url}/v1/{customer}/messages",
            "body": request_body(config, window),
            "columns": list(config.fields),
            "rate_limit_per_minute": config.limits.per_minute,
        }

    def _credentials(self) -> tuple[str, str, str]:
        env = self.ctx.env
        ref = secret_ref(self.config.token, TOKEN_ENV, "token")
        token = ref.resolve(env).get_secret_value()
        customer = self.config.customer_id
        if customer is None:
            customer = env.get(CUSTOMER_ENV, "")
            if not customer:
                raise ConfigError(
                    f"environment variable {CUSTOMER_ENV} is not set (for customer_id)"
                )
            try:
                customer = _customer_id(customer)
            except ValueError as exc:
                raise ConfigError(f"{CUSTOMER_ENV}: {exc}") from None
        return token, customer, ref.var

    def _pages(self, client: HttpClient, path: str, body: dict[str, Any]) -> Iterator[Answer]:
        """Every answer of one query, in order. The next request goes out as soon as the
        cursor is known: read from the answer's tail (:func:`cursor_ahead`) when it ends
        with its ``paging`` object, as Sprout's do, so the page itself is parsed by the
        reader while the server works on the next one (:meth:`Answer.data` then checks the
        parsed cursor is the one sent); otherwise parsed here first."""
        import orjson

        pages = CursorPaginator(repeated="the API returned the same cursor again")
        for cursor in pages:
            if cursor is not None:
                body["page_cursor"] = cursor
            try:
                # httpx's ``json=`` sends the same compact UTF-8 bytes, through the stdlib
                # encoder; the Content-Type header is the client's.
                raw = client.request("POST", path, content=orjson.dumps(body)).content
            except SourceError as exc:
                raise SourceError(f"{exc.detail} (page {pages.page})") from exc
            answer = Answer(raw, f"POST {path} (page {pages.page})")
            following = answer.ahead
            if following is UNREAD:
                following = answer.cursor()
            yield answer
            pages.update(following, where=answer.where)

    def extract(self, sink: CsvSink) -> None:
        """Stream the window's messages into ``sink``, continuing every query cut at the cap."""
        cfg, window, log = self.config, self.ctx.window, self.ctx.log
        token, customer, token_var = self._credentials()
        client = HttpClient(
            cfg.base_url,
            retry=cfg.retry,
            limiter=limiter_for(self.ctx.limits, f"sprout/{customer}", cfg.limits, log),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            retry_statuses=frozenset({202}),
            auth_hint=f"check {token_var} (an expired or revoked Sprout token)",
            log=log,
        )
        path = f"{cfg.base_url}/v1/{customer}/messages"  # absolute: errors name the host
        rows = RowMaker(cfg.fields, window)
        sink.open(cfg.fields)
        totals = {"pages": 0, "messages": 0, "outside": 0, "undated": 0, "repeated": 0}
        since: datetime | None = None
        skip: set[Any] = set()  # guids the previous query gave in the second we resume at
        queries: list[list[str]] = []
        try:
            while True:
                body = request_body(cfg, window, since)
                queries.append(body["filters"])
                seen, tail = self._query(client, path, body, rows, sink, skip, totals)
                if seen < RESULT_CAP:
                    break
                since, skip = self._continue(window, since, seen, tail)
        finally:
            client.close()
        if totals["outside"]:
            log.info("dropped messages outside the window", count=totals["outside"])
        sink.details.update(
            customer_id=customer,
            filters=queries[0],
            queries=len(queries),
            pages=totals["pages"],
            messages=totals["messages"],
            outside_window=totals["outside"],
            without_created_time=totals["undated"],
            repeated_at_continuation=totals["repeated"],
        )

    def _query(
        self,
        client: HttpClient,
        path: str,
        body: dict[str, Any],
        rows: RowMaker,
        sink: CsvSink,
        skip: set[Any],
        totals: dict[str, int],
    ) -> tuple[int, Tail]:
        """Every page of one query into ``sink``: (messages answered, the answer's tail)."""
        placement, write = rows.placement, sink.write_columns
        tail, seen, pages = Tail(), 0, 0
        pager = Prefetch(self._pages(client, path, body), name="sprout-pages")
        try:
            for answer in pager:
                data = answer.data()
                pages += 1
                seen += len(data)
                if set(map(type, data)) - {dict}:
                    raise SourceError(f"POST {path} (page {pages}): a message is not an object")
                tail.page(data)
                # ``skip`` holds the guids of one second: after a continuation's first page
                # or two, no page has any of them.
                skipping = bool(skip) and not skip.isdisjoint(
                    map(dict.get, data, repeat("guid", len(data)))
                )
                if skipping or not rows.all_inside(data):
                    kept = []
                    for msg in data:
                        if skipping and msg.get("guid") in skip:
                            totals["repeated"] += 1
                            continue
                        where = placement(msg.get("created_time"))
                        if where == 1:
                            totals["outside"] += 1
                            continue
                        if where == -1:
                            totals["undated"] += 1
                        kept.append(msg)
                    data = kept
                write(rows.columns(data))
                if (totals["pages"] + pages) % 100 == 0:
                    self.ctx.log.info("sprout pages", pages=totals["pages"] + pages, rows=sink.rows)
        except BaseException:
            # No new request starts after stop(), and close() fails one not yet answered,
            # except a request already blocked reading its answer (closing a socket does
            # not wake a thread in recv): that one ends at the answer or its timeout, in
            # the daemon thread, and is dropped. The error is not held back for it.
            pager.stop()
            client.close()
            raise
        pager.stop(wait=5.0)  # answered its last page: the thread is ending
        totals["pages"] += pages
        totals["messages"] += seen
        return seen, tail

    def _continue(
        self, window: TimeWindow, since: datetime | None, seen: int, tail: Tail
    ) -> tuple[datetime, set[Any]]:
        """Where the next query starts after one answered ``seen`` >= the cap, and what it skips."""
        start = since or window.start
        label = f"created_time [{start.isoformat()}, {window.end.isoformat()})"
        if not tail.ordered:
            raise SourceError(
                f"{label}: {seen} messages (Sprout's cap is {RESULT_CAP}) not in created_time "
                "order, so the rest cannot be read after the last one; narrow the window"
            )
        if tail.second is None:
            raise SourceError(f"{label}: {seen} messages (the cap) without a created_time")
        resume = datetime.fromisoformat(tail.second.replace("Z", "+00:00"))
        if resume <= start.astimezone(UTC):
            raise SourceError(
                f"{label}: {RESULT_CAP} or more messages created within the second "
                f"{tail.second}; Sprout truncates a query there and a second cannot be split"
            )
        if None in tail.guids:
            raise SourceError(f"{label}: a message at {tail.second} has no guid to skip it by")
        self.ctx.note(
            Finding(
                "window_split",
                f"Sprout answered its {RESULT_CAP}-result cap for {label}; "
                f"read the rest from {tail.second}",
                count=seen,
                data={"from": start.isoformat(), "to": window.end.isoformat(),
                      "resumed_at": tail.second, "messages": seen},
            )
        )  # fmt: skip
        return resume, tail.guids

    @classmethod
    def credential_vars(cls, config: SproutSocialConfig) -> list[str]:
        """The token variable, and ``SPROUT_CUSTOMER_ID`` unless ``customer_id`` is set."""
        token = secret_ref(config.token, TOKEN_ENV, "token").var
        return [token] if config.customer_id else [token, CUSTOMER_ENV]

    def probe(self, timeout: float) -> str:
        """``GET /v1/metadata/client``: the token works and can see the configured customer."""
        from xoelt.sources.base import probe_retry

        token, customer, token_var = self._credentials()
        url = f"{self.config.base_url}/v1/metadata/client"
        client = HttpClient(
            self.config.base_url,
            retry=probe_retry(timeout),
            limiter=limiter_for(
                self.ctx.limits, f"sprout/{customer}", self.config.limits, self.ctx.log
            ),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            auth_hint=f"check {token_var} (an expired or revoked Sprout token)",
            log=self.ctx.log,
        )
        with client:
            answer = client.json("GET", url)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise SourceError(f"GET {url}: response has no 'data' array")
        ids = [str(c.get("customer_id")) for c in data if isinstance(c, dict)]
        if customer not in ids:
            raise SourceError(
                f"GET {url}: the token cannot see customer {customer} (it sees {len(ids)} other"
                f" customer(s)); check {CUSTOMER_ENV} or customer_id"
            )
        return f"GET {url}: HTTP 200, customer {customer} visible"
