"""Fake Google endpoints on 127.0.0.1 for the Gmail and Sheets source tests.

One threaded ``http.server`` plays three Google hosts (the paths are the published ones):

- ``POST /token``: the OAuth2 token endpoint. A JWT-bearer grant is checked as Google checks
  it: RS256 signature verified with the service account's *public* key (generated per test),
  ``kid``, ``iss``, ``aud`` (Google's token URI), ``scope``, ``sub`` (only when delegating),
  ``iat``/``exp``. A refresh-token grant checks client id/secret and the refresh token.
  It issues an opaque access token bound to the granted scopes, valid ``token_lifetime`` s.
- ``/gmail/v1/users/{userId}/messages[/{id}[/attachments/{aid}]]``: Gmail, over a mailbox
  held in memory; ``q``'s ``after:``/``before:`` epochs filter on internalDate (both bounds
  *inclusive* here, since Gmail does not document them: the source must not rely on it).
- ``/v4/spreadsheets/{id}/values/{range}``: Sheets values.get; the range path segment is
  decoded and parsed as A1 (unquoted sheet names with spaces are a 400, as on Google).

APIs accept only live tokens carrying the right scope (401/403 otherwise, Google's JSON error
shape). Faults are queued per path substring and consumed in order.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GMAIL_SCOPES = {
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
}
SHEETS_SCOPES = {
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive.readonly",
}
FAST_RETRY = {"max_attempts": 4, "initial_backoff": 0.01, "max_backoff": 0.05, "timeout_seconds": 1}


def b64url(data: bytes) -> str:
    """base64url without padding, as Google sends it."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class ServiceAccount:
    """A service-account key file written for one test, and what the fake knows about it."""

    path: Path
    email: str
    key_id: str
    private_pem: str
    public_key: Any


@dataclass
class AuthorizedUser:
    path: Path
    client_id: str
    client_secret: str
    refresh_token: str


@dataclass
class Fault:
    path: str  # substring of the decoded request path
    kind: str  # status | drop | slow | malformed
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    times: int = 1


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    token: str | None
    at: float


class FakeGoogle:
    """The fake server (see module doc); ``url`` is its base, ``token_uri`` its token endpoint."""

    def __init__(self) -> None:
        self.accounts: dict[str, ServiceAccount] = {}
        self.users: dict[str, AuthorizedUser] = {}
        self.expected_subject: str | None = None
        self.revoked = False
        self.token_lifetime = 300
        self.tokens: dict[str, dict[str, Any]] = {}
        self.grants: list[dict[str, Any]] = []
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.expire_next = False
        self.reject_all_tokens = False
        self.messages: dict[str, dict[str, Any]] = {}
        self.attachments: dict[tuple[str, str], bytes] = {}
        self.sheets: dict[str, dict[str, list[list[Any]]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.token_uri = f"{self.url}/token"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- set-up ------------------------------------------------------------------------------

    def service_account(self, directory: Path) -> ServiceAccount:
        """Write a service-account key JSON whose token_uri is this fake."""
        key = _rsa_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        email = f"xoelt-{secrets.token_hex(4)}@test-project.iam.gserviceaccount.com"
        key_id = secrets.token_hex(20)
        path = directory / f"sa-{key_id[:6]}.json"
        info = {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(10**20 + next(self._ids)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/x",
            "universe_domain": "googleapis.com",
        }
        path.write_text(json.dumps(info, indent=2))
        account = ServiceAccount(path, email, key_id, pem, key.public_key())
        self.accounts[email] = account
        return account

    def authorized_user(self, directory: Path) -> AuthorizedUser:
        """Write an authorized-user JSON (refresh token) whose token_uri is this fake."""
        user = AuthorizedUser(
            directory / "adc.json",
            f"{secrets.token_hex(6)}.apps.googleusercontent.com",
            "GOCSPX-" + secrets.token_urlsafe(18),
            "1//" + secrets.token_urlsafe(40),
        )
        info = {
            "type": "authorized_user",
            "client_id": user.client_id,
            "client_secret": user.client_secret,
            "refresh_token": user.refresh_token,
            "token_uri": self.token_uri,
        }
        user.path.write_text(json.dumps(info))
        self.users[user.client_id] = user
        return user

    def fault(self, path: str, kind: str, **kwargs: Any) -> None:
        """Queue a fault for the next request(s) whose path contains ``path``."""
        self.faults.append(Fault(path, kind, **kwargs))

    def api_requests(self, contains: str = "") -> list[Seen]:
        return [r for r in self.requests if r.path != "/token" and contains in r.path]

    # -- Gmail mailbox ---------------------------------------------------------------------

    def add_message(self, message_id: str, internal_epoch: float, payload: dict[str, Any]) -> None:
        """A message; parts made by :func:`attachment`/:func:`inline` get their bodies here."""

        def fill(part: dict[str, Any], part_id: str) -> None:
            part["partId"] = part_id
            part.setdefault("headers", [])
            if "_attach" in part:
                data = part.pop("_attach")
                attachment_id = "ANGjdJ" + secrets.token_urlsafe(24)
                self.attachments[(message_id, attachment_id)] = data
                part["body"] = {"attachmentId": attachment_id, "size": len(data)}
            elif "_inline" in part:
                data = part.pop("_inline")
                part["body"] = {"size": len(data), "data": b64url(data)}
            else:
                part.setdefault("body", {"size": 0})
            for i, child in enumerate(part.get("parts", [])):
                fill(child, f"{part_id}.{i}" if part_id else str(i))

        fill(payload, "")
        self.messages[message_id] = {
            "id": message_id,
            "threadId": message_id,
            "labelIds": ["INBOX"],
            "snippet": "Your daily report",
            "sizeEstimate": 1000,
            "historyId": "1",
            "internalDate": str(int(internal_epoch * 1000)),
            "payload": payload,
        }

    # -- request handling ------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(h.path)
        path = unquote(split.path)
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        with self._lock:
            self.requests.append(
                Seen(method, split.path, path, parse_qs(split.query), token, time.monotonic())
            )
            fault = next((f for f in self.faults if f.path in path and f.times > 0), None)
            if fault:
                fault.times -= 1
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        try:
            if fault and fault.kind == "drop":
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault and fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault and fault.kind == "malformed":
                self._send(h, 200, '{"messages": [{"id": "trunc', raw=True)
                return
            elif fault and fault.kind == "status":
                self._send(
                    h, fault.status, fault.body or _google_error(fault.status), fault.headers
                )
                return
            if path == "/token" and method == "POST":
                status, answer = self._token(h.headers.get("Content-Type", ""), body)
                self._send(h, status, answer)
            elif path.startswith("/gmail/v1/users/"):
                self._gmail(h, path, parse_qs(split.query), token)
            elif path.startswith("/v4/spreadsheets/"):
                self._sheets(h, split.path, parse_qs(split.query), token)
            else:
                self._send(h, 404, _google_error(404, "Not Found"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        raw: bool = False,
    ) -> None:
        data = (body if raw else json.dumps(body)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=UTF-8")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    # -- token endpoint --------------------------------------------------------------------

    def _token(self, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return 400, {"error": "invalid_request", "error_description": "Bad content type"}
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        grant = form.get("grant_type")
        record: dict[str, Any] = {"grant_type": grant}
        self.grants.append(record)
        if grant == JWT_GRANT:
            status, answer, scopes = self._jwt_grant(form.get("assertion", ""), record)
        elif grant == "refresh_token":
            status, answer, scopes = self._refresh_grant(form, record)
        else:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": f"Invalid grant_type: {grant}",
            }
        record["status"] = status
        if status != 200:
            return status, answer
        access = f"ya29.fake-{next(self._ids)}-{secrets.token_urlsafe(16)}"
        self.tokens[access] = {"scopes": scopes, "sub": record.get("sub"), "expired": False}
        record["token"] = access
        return 200, {
            "access_token": access,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
        }

    def _jwt_grant(
        self, assertion: str, record: dict[str, Any]
    ) -> tuple[int, dict[str, Any], set[str]]:
        def bad(description: str, error: str = "invalid_grant", status: int = 400) -> Any:
            record["problem"] = description
            return status, {"error": error, "error_description": description}, set()

        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(_unb64url(head_b64))
            claims = json.loads(_unb64url(claims_b64))
        except ValueError:
            return bad("Invalid JWT: could not parse")
        record["claims"] = claims
        account = self.accounts.get(claims.get("iss", ""))
        if account is None:
            return bad("Invalid grant: account not found")
        if header.get("alg") != "RS256" or header.get("kid") != account.key_id:
            return bad("Invalid JWT: wrong alg or kid")
        try:
            account.public_key.verify(
                _unb64url(sig_b64),
                f"{head_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return bad("Invalid JWT Signature.")
        if self.revoked:
            return bad("Invalid JWT Signature.")  # what Google says once the key is deleted
        now = time.time()
        if claims.get("aud") != GOOGLE_TOKEN_AUD:
            return bad(f"Invalid JWT: aud {claims.get('aud')!r}")
        if (
            not (now - 300 <= claims.get("iat", 0) <= now + 300)
            or claims.get("exp", 0) - claims["iat"] > 3600
        ):
            return bad(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
            )
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes:
            return bad("Invalid OAuth scope or ID token audience provided.", "invalid_scope")
        record["sub"] = claims.get("sub")
        if claims.get("sub") != self.expected_subject:
            return bad(
                "Client is unauthorized to retrieve access tokens using this method.",
                "unauthorized_client",
                401,
            )
        return 200, {}, scopes

    def _refresh_grant(
        self, form: dict[str, str], record: dict[str, Any]
    ) -> tuple[int, dict[str, Any], set[str]]:
        user = self.users.get(form.get("client_id", ""))
        record["scope"] = form.get("scope")
        if user is None or form.get("client_secret") != user.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}, set()
        if self.revoked or form.get("refresh_token") != user.refresh_token:
            return (
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
                set(),
            )
        return 200, {}, set(str(form.get("scope", "")).split())

    def _authorized(
        self, h: BaseHTTPRequestHandler, token: str | None, needed: set[str]
    ) -> dict[str, Any] | None:
        info = self.tokens.get(token or "")
        if info and self.expire_next and not info["expired"]:
            self.expire_next = False
            info["expired"] = True
        if info is None or info["expired"] or self.reject_all_tokens:
            self._send(
                h,
                401,
                _google_error(
                    401, "Request had invalid authentication credentials.", status="UNAUTHENTICATED"
                ),
                {
                    "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
                },
            )
            return None
        if not info["scopes"] & needed:
            self._send(
                h,
                403,
                _google_error(
                    403,
                    "Request had insufficient authentication scopes.",
                    "insufficientPermissions",
                    "PERMISSION_DENIED",
                ),
            )
            return None
        return info

    # -- Gmail -------------------------------------------------------------------------------

    def _gmail(
        self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], token: str | None
    ) -> None:
        if self._authorized(h, token, GMAIL_SCOPES) is None:
            return
        parts = path.removeprefix("/gmail/v1/users/").split("/")
        if parts[0] != "me" or parts[1:2] != ["messages"]:
            self._send(
                h, 400, _google_error(400, "Invalid users.messages request", "invalidArgument")
            )
            return
        if len(parts) == 2:
            self._send(h, *self._gmail_list(query))
        elif len(parts) == 3:
            message = self.messages.get(parts[2])
            if query.get("format") != ["full"]:
                self._send(
                    h,
                    400,
                    _google_error(400, "this fake serves format=full only", "invalidArgument"),
                )
            elif message is None:
                self._send(
                    h,
                    404,
                    _google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND"),
                )
            else:
                self._send(h, 200, message)
        elif len(parts) == 5 and parts[3] == "attachments":
            data = self.attachments.get((parts[2], parts[4]))
            if data is None:
                self._send(
                    h,
                    404,
                    _google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND"),
                )
            else:
                self._send(
                    h, 200, {"attachmentId": parts[4], "size": len(data), "data": b64url(data)}
                )
        else:
            self._send(h, 404, _google_error(404, "Not Found"))

    def _gmail_list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        q = query.get("q", [""])[0]
        after = re.search(r"\bafter:(\d+)\b", q)
        before = re.search(r"\bbefore:(\d+)\b", q)
        size = int(query.get("maxResults", ["100"])[0])
        if not after or not before or size > 500:
            return 400, _google_error(400, "Invalid query", "invalidArgument")
        low, high = int(after.group(1)) * 1000, int(before.group(1)) * 1000
        hits = sorted(
            (m for m in self.messages.values() if low <= int(m["internalDate"]) <= high),
            key=lambda m: -int(m["internalDate"]),
        )
        page_token = query.get("pageToken", [""])[0]
        start = 0
        if page_token:
            match = re.fullmatch(r"page-(\d+)", page_token)
            if not match:
                return 400, _google_error(400, "Invalid pageToken", "invalidArgument")
            start = int(match.group(1))
        page = hits[start : start + size]
        answer: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if page:
            answer["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in page]
        if start + size < len(hits):
            answer["nextPageToken"] = f"page-{start + size}"
        return 200, answer

    # -- Sheets ------------------------------------------------------------------------------

    def _sheets(
        self,
        h: BaseHTTPRequestHandler,
        raw_path: str,
        query: dict[str, list[str]],
        token: str | None,
    ) -> None:
        if self._authorized(h, token, SHEETS_SCOPES) is None:
            return
        match = re.fullmatch(r"/v4/spreadsheets/([^/]+)/values/([^/]+)", raw_path)
        if not match:
            self._send(h, 404, _google_error(404, "Not Found"))
            return
        spreadsheet = self.sheets.get(match.group(1))
        if spreadsheet is None:
            self._send(
                h, 404, _google_error(404, "Requested entity was not found.", status="NOT_FOUND")
            )
            return
        if query.get("majorDimension") != ["ROWS"]:
            self._send(h, 400, _google_error(400, "majorDimension=ROWS expected by this fake"))
            return
        a1 = unquote(match.group(2))
        parsed = _parse_a1(a1)
        if parsed is None or parsed[0] not in spreadsheet:
            self._send(
                h,
                400,
                _google_error(400, f"Unable to parse range: {a1}", status="INVALID_ARGUMENT"),
            )
            return
        title, first_col, first_row = parsed
        rows = [row[first_col:] for row in spreadsheet[title][first_row - 1 :]]
        render = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        if render == "FORMATTED_VALUE":
            rows = [[_formatted(v) for v in row] for row in rows]
        rows = [_trim(row) for row in rows]
        while rows and not rows[-1]:
            rows.pop()
        name = f"'{title.replace(chr(39), chr(39) * 2)}'" if re.search(r"\W", title) else title
        width = max((len(r) for r in rows), default=1)
        start_letter = chr(65 + first_col)
        answer: dict[str, Any] = {
            "range": f"{name}!{start_letter}{first_row}:{chr(64 + first_col + width)}{first_row + max(len(rows), 1) - 1}",
            "majorDimension": "ROWS",
        }
        if rows:
            answer["values"] = rows
        self._send(h, 200, answer)


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


def _formatted(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return "" if value is None else str(value)


def _trim(row: list[Any]) -> list[Any]:
    row = list(row)
    while row and row[-1] in ("", None):
        row.pop()
    return row


def _google_error(
    code: int, message: str = "", reason: str = "", status: str = ""
) -> dict[str, Any]:
    """Google's JSON error body."""
    defaults = {
        400: ("Bad Request", "badRequest", "INVALID_ARGUMENT"),
        401: ("Unauthorized", "authError", "UNAUTHENTICATED"),
        403: ("Forbidden", "forbidden", "PERMISSION_DENIED"),
        404: ("Not Found", "notFound", "NOT_FOUND"),
        429: (
            "Resource has been exhausted (e.g. check quota).",
            "rateLimitExceeded",
            "RESOURCE_EXHAUSTED",
        ),
        500: ("Internal error encountered.", "backendError", "INTERNAL"),
        503: ("The service is currently unavailable.", "backendError", "UNAVAILABLE"),
    }.get(code, ("Error", "unknown", "UNKNOWN"))
    message, reason, status = message or defaults[0], reason or defaults[1], status or defaults[2]
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status,
        }
    }


def attachment(filename: str, data: bytes, mime: str = "text/csv") -> dict[str, Any]:
    """A part whose body the API serves through attachments.get."""
    return {"mimeType": mime, "filename": filename, "_attach": data}


def inline(filename: str, data: bytes, mime: str = "text/csv") -> dict[str, Any]:
    """A part whose (small) body is inline in ``body.data``."""
    return {"mimeType": mime, "filename": filename, "_inline": data}


def text(body: str, mime: str = "text/plain") -> dict[str, Any]:
    """A body part (no filename: not an attachment)."""
    return {"mimeType": mime, "filename": "", "_inline": body.encode()}


def multipart(subtype: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"mimeType": f"multipart/{subtype}", "filename": "", "parts": list(parts)}


def rate_limit_403(reason: str) -> dict[str, Any]:
    """Gmail's quota answer sent as 403."""
    return _google_error(403, "User-rate limit exceeded.", reason, "PERMISSION_DENIED")


def forbidden_403() -> dict[str, Any]:
    return _google_error(
        403, "The caller does not have permission", "forbidden", "PERMISSION_DENIED"
    )


def ingest_csv(files: list[Path]) -> tuple[list[list[str]], dict[str, Any]]:
    """(rows of the ingest CSV, its manifest) from ``harness.ingest_files()``."""
    import csv

    data = next(p for p in files if p.suffix == ".csv")
    manifest = next(p for p in files if p.name.endswith("_manifest.json"))
    with data.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows, json.loads(manifest.read_text())
