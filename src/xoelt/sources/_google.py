"""Google OAuth2 for the Google API sources (``gmail_attachments``, ``google_sheets``).

Credentials come from one JSON file, named by the ``credentials_file`` key or, when that is
omitted, by ``GOOGLE_APPLICATION_CREDENTIALS`` (Google's own convention):

- a service-account key (``"type": "service_account"``), optionally with ``subject`` for
  domain-wide delegation (reading a shared mailbox as that user); google-auth signs an RS256
  JWT assertion with the key and trades it at the key's ``token_uri`` for an access token;
- an authorized-user file (``"type": "authorized_user"``: client id/secret + refresh token,
  as ``gcloud auth application-default login`` writes it); its ``token_uri`` is honoured
  when present, else Google's.

The access token goes in ``Authorization: Bearer`` through an httpx auth flow: it is
refreshed before use when google-auth considers it stale, and when the API answers 401
(expired or revoked early) it is refreshed once and the request sent again; a second 401 is
an :class:`SourceError`. Refresh failures name the credentials file and the account, never
key material.

Transport: google-auth calls a ``google.auth.transport.Request``. We adapt our own
:class:`HttpClient` (httpx) instead of using ``google.auth.transport.requests`` because
``requests`` is not a declared dependency of xoelt (it is only present transitively), and so
the token endpoint gets the same timeouts, retries (429/5xx/dropped connections with backoff,
jitter and ``Retry-After``) and User-Agent as every API call. OAuth error answers (4xx other
than 408/429) are handed back to google-auth unchanged so it can read ``invalid_grant`` etc.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from xoelt.config.types import StrictModel
from xoelt.errors import ConfigError, SourceError
from xoelt.redact import register as register_secret
from xoelt.sources.http import (
    HttpClient,
    RateLimiter,
    RetryConfig,
    TransientHTTPError,
    parse_retry_after,
    redact,
    shared_limiter,
)

if TYPE_CHECKING:
    import httpx

CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# Quota errors Google sends as 403 (older APIs) or 429; "daily" limits are not among them.
RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
)
_SECRET_KEYS = ("private_key", "private_key_id", "refresh_token", "client_secret")


class GoogleAuthConfig(StrictModel):
    """The credential keys every Google source accepts (plus its own ``scope``)."""

    credentials_file: str | None = None
    subject: str | None = None
    retry: RetryConfig = RetryConfig()

    @field_validator("credentials_file")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "credentials_file must be a path (or omit it to use GOOGLE_APPLICATION_CREDENTIALS)"
            )
        return value

    @field_validator("subject")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError(f"subject {value!r} must be the email address of the user to act as")
        return value


def credential_vars(configured: str | None) -> list[str]:
    """What a Google source needs set: ``GOOGLE_APPLICATION_CREDENTIALS`` unless
    ``credentials_file`` names the file."""
    return [] if configured else [CREDENTIALS_ENV]


@contextmanager
def probe_session(
    cfg: Any, env: Mapping[str, str], log: Any, name: str, per_minute: int, timeout: float
) -> Generator[GoogleApiClient]:
    """An authorised client for one ``doctor`` probe call (``cfg``: a Google source's
    config with ``credentials_file``, ``scope``, ``subject`` and ``base_url``)."""
    from xoelt.sources.base import probe_retry

    retry = probe_retry(timeout)
    path = credentials_path(cfg.credentials_file, env)
    auth = GoogleAuth(path, [cfg.scope], subject=cfg.subject, retry=retry, log=log)
    limiter = shared_limiter(f"{name}:{cfg.subject or auth.identity}", per_minute=per_minute)
    with closing(auth), closing(auth.client(cfg.base_url, limiter=limiter, retry=retry)) as api:
        yield api


def credentials_path(configured: str | None, env: Mapping[str, str]) -> Path:
    """The credentials file: ``credentials_file`` or ``$GOOGLE_APPLICATION_CREDENTIALS``."""
    if configured:
        path, origin = Path(configured).expanduser(), "credentials_file"
    else:
        value = env.get(CREDENTIALS_ENV)
        if not value:
            raise ConfigError(
                f"environment variable {CREDENTIALS_ENV} is not set (the path of a Google "
                "service-account or authorized-user JSON file; or set credentials_file)"
            )
        path, origin = Path(value).expanduser(), CREDENTIALS_ENV
    if not path.is_file():
        raise ConfigError(f"Google credentials file {path} (from {origin}) does not exist")
    return path


def describe_credentials(config: GoogleAuthConfig) -> dict[str, Any]:
    """What ``plan`` says about credentials (a path or a variable name; no I/O)."""
    out: dict[str, Any] = {"credentials": config.credentials_file or f"${CREDENTIALS_ENV}"}
    if config.subject:
        out["subject"] = config.subject
    return out


def error_reasons(response: httpx.Response) -> set[str]:
    """The ``reason`` values of a Google JSON error (``errors[]`` and ``ErrorInfo`` details)."""
    try:
        body = response.json()
    except ValueError:
        return set()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    items = [*(error.get("errors") or []), *(error.get("details") or [])]
    return {str(item["reason"]) for item in items if isinstance(item, dict) and item.get("reason")}


class GoogleApiClient(HttpClient):
    """:class:`HttpClient` that also retries Google's quota errors sent as HTTP 403.

    Gmail answers "rate limit exceeded" with 403 or 429 and reason ``rateLimitExceeded`` or
    ``userRateLimitExceeded``; a 403 for a missing permission or scope stays terminal.
    """

    def check_response(
        self, method: str, url: str, response: httpx.Response, *, read: bool
    ) -> None:
        if response.status_code == 403:
            if read:
                response.read()
            limited = sorted(error_reasons(response) & RATE_LIMIT_REASONS)
            if limited:
                raise TransientHTTPError(
                    f"{method} {url.split('?', 1)[0]}: HTTP 403 {', '.join(limited)}",
                    parse_retry_after(response.headers.get("Retry-After")),
                )
        super().check_response(method, url, response, read=read)


class _TokenEndpointClient(HttpClient):
    """Hands OAuth error answers (4xx but 408/429) back to google-auth, which parses them."""

    def check_response(
        self, method: str, url: str, response: httpx.Response, *, read: bool
    ) -> None:
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            if read:
                response.read()
            return
        super().check_response(method, url, response, read=read)


def _google_request(client: HttpClient) -> Any:
    """A ``google.auth.transport.Request`` that sends through ``client`` (see module doc).

    Failures the client gives up on surface as :class:`SourceError` rather than
    google-auth's ``TransportError``; :meth:`GoogleAuth._refresh` maps both.
    """
    from google.auth import transport

    class _Response(transport.Response):
        def __init__(self, response: httpx.Response) -> None:
            self._response = response

        @property
        def status(self) -> int:
            return self._response.status_code

        @property
        def headers(self) -> Mapping[str, str]:
            return self._response.headers

        @property
        def data(self) -> bytes:
            return self._response.content

    class _Request(transport.Request):
        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: bytes | None = None,
            headers: Mapping[str, str] | None = None,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> _Response:
            return _Response(client.request(method, url, content=body, headers=dict(headers or {})))

    return _Request()


class GoogleAuth:
    """Credentials from one JSON file, refreshed on demand; safe to share between threads."""

    def __init__(
        self,
        path: Path,
        scopes: Sequence[str],
        *,
        subject: str | None = None,
        retry: RetryConfig | None = None,
        log: Any = None,
    ) -> None:
        self.path = path
        self.scopes = list(scopes)
        self.subject = subject
        self.log = log
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._credentials, self.identity = self._load()
        self._http = _TokenEndpointClient("", retry=retry, log=log)
        self._request = _google_request(self._http)

    def _load(self) -> tuple[Any, str]:
        where = f"Google credentials file {self.path}"
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            # from None: the file holds a private key, and the cause carries the file's whole
            # text (JSONDecodeError.doc, UnicodeDecodeError.object) to whatever reads the chain.
            raise ConfigError(f"{where}: cannot read it as JSON ({type(exc).__name__})") from None
        if not isinstance(info, dict):
            raise ConfigError(f"{where}: not a JSON object")
        self._secrets = [str(info[k]) for k in _SECRET_KEYS if info.get(k)]
        for secret in self._secrets:
            register_secret(secret)
        kind = info.get("type")
        try:
            if kind == "service_account":
                from google.oauth2 import service_account

                creds = service_account.Credentials.from_service_account_info(
                    info, scopes=self.scopes, subject=self.subject
                )
                return creds, creds.service_account_email
            if kind == "authorized_user":
                return self._authorized_user(info, where)
        except ValueError as exc:  # google-auth: missing fields or an unreadable private key
            # from None: the cause's text may quote the key; only the redacted copy is shown.
            raise ConfigError(f"{where}: {redact(str(exc), *self._secrets)}") from None
        raise ConfigError(
            f"{where}: type {kind!r} is not supported (use a service_account key or an authorized_user file)"
        )

    def _authorized_user(self, info: dict[str, Any], where: str) -> tuple[Any, str]:
        if self.subject:
            raise ConfigError(
                f"{where}: subject (domain-wide delegation) needs a service-account key, "
                "not an authorized_user file"
            )
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
        if missing:
            raise ConfigError(f"{where}: authorized_user file lacks {', '.join(missing)}")
        from google.oauth2 import credentials

        # Built directly: from_authorized_user_info always overrides token_uri with Google's.
        creds = credentials.Credentials(
            token=None,
            refresh_token=info["refresh_token"],
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI,
            scopes=self.scopes,
            quota_project_id=info.get("quota_project_id"),
        )
        return creds, str(info.get("account") or info["client_id"])

    def close(self) -> None:
        """Close the token endpoint's connection pool."""
        self._http.close()

    def token(self) -> str:
        """A current access token (refreshed first when missing, stale or expired)."""
        from google.auth.credentials import TokenState

        with self._lock:
            if self._credentials.token_state is not TokenState.FRESH:
                self._refresh()
            return self._credentials.token

    def refresh(self, refused: str) -> str:
        """A new token after the API refused ``refused`` (unless another thread already did)."""
        with self._lock:
            if self._credentials.token == refused:
                self._refresh()
            return self._credentials.token

    def _refresh(self) -> None:
        from google.auth import exceptions

        where = f"Google token refresh for {self.identity} (credentials file {self.path}) failed"
        # Every branch re-raises from None: google-auth's messages quote the token endpoint's
        # answer, which may echo the refresh token or client secret; only redacted text is shown.
        try:
            self._credentials.refresh(self._request)
        except exceptions.GoogleAuthError as exc:
            detail = str(exc.args[0]) if exc.args else type(exc).__name__
            raise SourceError(f"{where}: {redact(detail, *self._secrets)}") from None
        except SourceError as exc:
            raise SourceError(f"{where}: {redact(exc.message, *self._secrets)}") from None
        except Exception as exc:  # google-auth on an odd 200 answer (e.g. a body that is not JSON)
            raise SourceError(
                f"{where}: unexpected token endpoint answer ({type(exc).__name__})"
            ) from None
        if not self._credentials.token:
            raise SourceError(f"{where}: the token endpoint returned no access token")
        register_secret(self._credentials.token)
        if self.log is not None:
            self.log.info("google access token refreshed", account=self.identity)

    def bearer(self) -> httpx.Auth:
        """An httpx auth flow: ``Authorization: Bearer``, one refresh-and-resend on a 401."""
        import httpx

        auth = self

        class _Bearer(httpx.Auth):
            def auth_flow(
                self, request: httpx.Request
            ) -> Generator[httpx.Request, httpx.Response, None]:
                token = auth.token()
                request.headers["Authorization"] = f"Bearer {token}"
                response = yield request
                if response.status_code == 401:
                    if auth.log is not None:
                        auth.log.info(
                            "access token refused (401); refreshing once",
                            account=auth.identity,
                            request=f"{request.method} {request.url.copy_with(query=None)}",
                        )
                    request.headers["Authorization"] = f"Bearer {auth.refresh(token)}"
                    yield request

        return _Bearer()

    def client(self, base_url: str, *, limiter: RateLimiter, retry: RetryConfig) -> GoogleApiClient:
        """An API client that authenticates with these credentials."""
        return GoogleApiClient(
            base_url,
            retry=retry,
            limiter=limiter,
            auth=self.bearer(),
            auth_hint=(
                f"check that {self.identity} (credentials file {self.path}) may read this "
                f"and was granted scope {' '.join(self.scopes)}"
            ),
            log=self.log,
        )
