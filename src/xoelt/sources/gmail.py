"""``gmail_attachments``: the CSV attachments of the Gmail messages received in the window.

Flow (Gmail API v1): ``GET users/{userId}/messages?q=…`` page by page until there is no
``nextPageToken``; ``GET messages/{id}?format=full`` for each; walk ``payload`` and its
``parts`` recursively; every part with a ``filename`` matching ``filename_pattern`` is read
from ``GET messages/{id}/attachments/{attachmentId}`` or, when small enough to be inline,
from ``body.data`` (base64url, padding restored), and written to a file in the workdir.

The window: ``q`` becomes ``(<query>) after:<start> before:<end>`` in epoch seconds (Gmail
reads bare dates as midnight Pacific; epochs are exact and zone independent). Gmail does not
document whether those bounds are inclusive, so each message's ``internalDate`` (epoch ms,
the time Google accepted it; what Gmail sorts and searches by) is checked against the
half-open ``[start, end)`` too, and messages outside are skipped and counted.

Output: the attachments are combined by column name, like ``s3_upload``: the header is the
union in first-seen order, in message order (``internalDate``, then id, then MIME order), and
a file lacking a column gets empty values. Two provenance columns are appended:
``_gmail_message_id`` and ``_attachment_filename`` (the sanitised file name).

Only CSV is parsed. ``.xlsx`` is not supported (no spreadsheet reader is a dependency):
attachments not matching ``filename_pattern`` (``*.csv`` by default, case-insensitive) are
skipped and listed in the manifest with the reason, and a matching file that turns out to be
a ZIP/XLSX fails with a clear message. Memory: one attachment's JSON answer at a time
(Gmail caps a message at 25 MB); rows are streamed from the decoded files.
"""

from __future__ import annotations

import base64
import binascii
import csv
import fnmatch
import math
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import Field, field_validator

from xoelt.config.types import BaseUrl, Encoding
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
from xoelt.sources.csv_files import CsvFile, CsvFiles
from xoelt.sources.http import shared_limiter
from xoelt.sources.paging import CursorPaginator
from xoelt.timewindow import TimeWindow

GMAIL_BASE = "https://gmail.googleapis.com"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
PROVENANCE = ("_gmail_message_id", "_attachment_filename")
# 15,000 quota units per user per minute; messages.list/get and attachments.get cost 5 each.
CALLS_PER_MINUTE = 15_000 // 5
_WINDOW_OPERATORS = re.compile(
    r"(^|[\s(])-?(after|before|older|newer|older_than|newer_than):", re.I
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GmailConfig(GoogleAuthConfig):
    """The ``extractor:`` block of a ``gmail_attachments`` source."""

    query: str = Field(min_length=1)
    filename_pattern: str = "*.csv"
    user_id: str = "me"
    label_ids: list[str] = Field(default_factory=list)
    include_spam_trash: bool = False
    max_results: int = Field(100, ge=1, le=500)
    scope: str = GMAIL_READONLY
    base_url: BaseUrl = GMAIL_BASE
    encoding: Encoding = "utf-8-sig"
    delimiter: str = Field(",", min_length=1, max_length=1)
    allow_empty: bool = False
    columns: list[str] = Field(
        default_factory=list
    )  # the header to write when allow_empty finds no attachment

    @field_validator("query")
    @classmethod
    def _no_dates(cls, value: str) -> str:
        if _WINDOW_OPERATORS.search(value):
            raise ValueError(
                "leave after:/before:/older_than:/newer_than: out of query; the window adds them"
            )
        return value

    @field_validator("filename_pattern")
    @classmethod
    def _csv_only(cls, value: str) -> str:
        if value.lower().endswith((".xlsx", ".xls", ".xlsm", ".zip")):
            raise ValueError("only CSV attachments can be read (.xlsx/.xls/.zip are not supported)")
        return value

    @field_validator("scope")
    @classmethod
    def _full_access(cls, value: str) -> str:
        if value.endswith("/gmail.metadata"):
            raise ValueError("the gmail.metadata scope cannot search (q) or read attachments")
        return value


def window_query(config: GmailConfig, window: TimeWindow) -> str:
    """``(<query>) after:<epoch> before:<epoch>`` for the window (seconds, zone independent)."""
    after = math.floor(window.start.timestamp())
    before = math.ceil(window.end.timestamp())
    return f"({config.query}) after:{after} before:{before}"


def sanitize_filename(name: str) -> str:
    """A file name safe to store: no directories, ``..``, control characters or leading dots."""
    name = _CONTROL.sub("", name).replace("/", "_").replace("\\", "_")
    name = re.sub(r"\.{2,}", ".", name).strip().lstrip(".")
    return name[:200] or "attachment"


def decode_base64url(data: str) -> bytes:
    """Gmail's base64url, with the ``=`` padding it leaves out restored."""
    padded = data + "=" * (-len(data) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def walk_parts(part: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``part`` and every part nested under it, depth first in MIME order."""
    yield part
    for child in part.get("parts") or []:
        if isinstance(child, dict):
            yield from walk_parts(child)


class GmailAttachmentsSource(Source[GmailConfig], source_type="gmail_attachments"):
    """CSV attachments of the messages matching ``query`` in the window."""

    @classmethod
    def describe(cls, config: GmailConfig, window: TimeWindow) -> dict[str, Any]:
        return {
            "request": f"GET {config.base_url}/gmail/v1/users/{config.user_id}/messages",
            "q": window_query(config, window),
            "filename_pattern": config.filename_pattern,
            "scope": config.scope,
            **describe_credentials(config),
        }

    def extract(self, sink: CsvSink) -> None:
        """List the window's messages, save their CSV attachments, combine them into ``sink``."""
        cfg = self.config
        path = credentials_path(cfg.credentials_file, self.ctx.env)
        auth = GoogleAuth(path, [cfg.scope], subject=cfg.subject, retry=cfg.retry, log=self.ctx.log)
        limiter = shared_limiter(
            f"gmail:{cfg.subject or auth.identity}", per_minute=CALLS_PER_MINUTE
        )
        self._base = f"{cfg.base_url}/gmail/v1/users/{quote(cfg.user_id, safe='@')}"
        self._files = CsvFiles(
            delimiter=cfg.delimiter,
            allow_empty=cfg.allow_empty,
            columns=cfg.columns,
            reserved=PROVENANCE,
            log=self.ctx.log,
        )
        self._skipped: list[dict[str, Any]] = []
        self._outside = 0
        (self.ctx.workdir / "gmail").mkdir(exist_ok=True)
        with (
            closing(auth),
            closing(auth.client(cfg.base_url, limiter=limiter, retry=cfg.retry)) as api,
        ):
            listed = self._list(api)
        query = window_query(cfg, self.ctx.window)
        nothing = f"no attachment matching {cfg.filename_pattern!r} in messages matching {query!r}"
        sink.details["attachments"] = self._files.write(sink, nothing=nothing, noun="attachment")
        sink.details.update(
            query=query,
            user_id=cfg.user_id,
            messages_listed=listed,
            messages_outside_window=self._outside,
            skipped_attachments=self._skipped,
        )

    # -- reading ------------------------------------------------------------------------------

    def _list(self, api: GoogleApiClient) -> int:
        cfg = self.config
        params: dict[str, Any] = {
            "q": window_query(cfg, self.ctx.window),
            "maxResults": cfg.max_results,
        }
        if cfg.label_ids:
            params["labelIds"] = cfg.label_ids
        if cfg.include_spam_trash:
            params["includeSpamTrash"] = "true"
        seen: set[str] = set()
        where = f"GET {self._base}/messages"
        pages = CursorPaginator(repeated="nextPageToken repeated; stopping a loop")
        for token in pages:
            page = api.json(
                "GET",
                f"{self._base}/messages",
                params={**params, "pageToken": token} if token else params,
            )
            if not isinstance(page, dict) or not isinstance(page.get("messages", []), list):
                raise SourceError(f"{where}: unexpected answer (no messages list)")
            for item in page.get("messages", []):
                message_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(message_id, str) or not message_id:
                    raise SourceError(f"{where}: a listed message has no id")
                if message_id not in seen:
                    seen.add(message_id)
                    self._message(api, message_id)
            pages.update(page.get("nextPageToken"), where=where)
        return len(seen)

    def _message(self, api: GoogleApiClient, message_id: str) -> None:
        url = f"{self._base}/messages/{quote(message_id, safe='')}"
        message = api.json("GET", url, params={"format": "full"})
        try:
            internal_ms = int(message["internalDate"])
        except (TypeError, KeyError, ValueError) as exc:
            raise SourceError(f"GET {url}: message has no valid internalDate") from exc
        window = self.ctx.window
        if not window.start.timestamp() * 1000 <= internal_ms < window.end.timestamp() * 1000:
            self._outside += 1
            self.ctx.log.debug(
                "message outside the window", message_id=message_id, internal_ms=internal_ms
            )
            return
        pattern = self.config.filename_pattern.lower()
        internal = datetime.fromtimestamp(internal_ms / 1000, UTC).isoformat()
        for position, part in enumerate(walk_parts(message.get("payload") or {})):
            raw_name = part.get("filename")
            if not raw_name:
                continue  # a body part (text/html, multipart container), not an attachment
            name = sanitize_filename(str(raw_name))
            if not fnmatch.fnmatchcase(name.lower(), pattern):
                reason = f"does not match filename_pattern {self.config.filename_pattern!r}"
                self._skipped.append({"message_id": message_id, "filename": name, "reason": reason})
                continue
            data = self._content(api, url, part.get("body") or {}, name)
            target = self.ctx.workdir / "gmail" / f"{len(self._files):05d}.csv"
            target.write_bytes(data)
            where = f"message {message_id} attachment {name!r}"
            listing = {
                "message_id": message_id,
                "filename": name,
                "internal_date": internal,
                "bytes": len(data),
            }
            self._files.add(
                CsvFile(
                    where,
                    self._header(target, where, data[:4]),
                    partial(target.open, encoding=self.config.encoding, newline=""),
                    listing,
                    extra=(message_id, name),
                    order=(internal_ms, message_id, position),
                    local=target,
                )
            )

    def _content(self, api: GoogleApiClient, url: str, body: dict[str, Any], name: str) -> bytes:
        attachment_id = body.get("attachmentId")
        where = f"GET {url}"
        if attachment_id:
            where = f"GET {url}/attachments/{{attachmentId}}"
            body = api.json("GET", f"{url}/attachments/{quote(str(attachment_id), safe='')}")
            if not isinstance(body, dict) or not isinstance(body.get("data"), str):
                raise SourceError(f"{where}: attachment {name!r} has no data")
        try:
            data = decode_base64url(str(body.get("data") or ""))
        except (binascii.Error, ValueError) as exc:
            raise SourceError(f"{where}: attachment {name!r} is not valid base64url") from exc
        size = body.get("size")
        if isinstance(size, int) and size != len(data):
            raise SourceError(
                f"{where}: attachment {name!r} is {len(data)} bytes, Gmail says {size}"
            )
        return data

    def _header(self, path: Path, where: str, magic: bytes) -> list[str]:
        if magic.startswith(b"PK\x03\x04"):
            raise SourceError(
                f"{where} is a ZIP/XLSX file; only CSV is read (narrow filename_pattern)"
            )
        try:
            with path.open(encoding=self.config.encoding, newline="") as fh:
                return next(csv.reader(fh, delimiter=self.config.delimiter), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(
                f"{where}: not readable as {self.config.encoding} CSV ({exc})"
            ) from exc

    @classmethod
    def credential_vars(cls, config: GmailConfig) -> list[str]:
        return google_credential_vars(config.credentials_file)

    def probe(self, timeout: float) -> str:
        """``GET users/{userId}/profile``: a token for the scope, and the mailbox readable."""
        cfg = self.config
        url = f"{cfg.base_url}/gmail/v1/users/{quote(cfg.user_id, safe='@')}/profile"
        with probe_session(
            cfg, self.ctx.env, self.ctx.log, "gmail", CALLS_PER_MINUTE, timeout
        ) as api:
            profile = api.json("GET", url)
        if not isinstance(profile, dict) or "emailAddress" not in profile:
            raise SourceError(f"GET {url}: unexpected answer (no emailAddress)")
        return f"GET {url}: HTTP 200, mailbox {profile['emailAddress']}"
