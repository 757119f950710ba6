"""Google's OAuth2 token endpoint and API auth, the base of the Gmail and Sheets fakes.

``POST /token`` (route ``token``) checks a JWT-bearer grant as Google does: RS256 signature
verified with the service account's *public* key (generated per test), ``kid``, ``iss``,
``aud`` (Google's token URI), ``scope``, ``sub`` (only when delegating), ``iat``/``exp``. A
refresh-token grant checks client id/secret and the refresh token. It issues an opaque
access token bound to the granted scopes, valid ``token_lifetime`` s. APIs accept only live
tokens carrying the right scope (401/403 otherwise, Google's JSON error shape).
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.api import FakeApi, Fault, Request, Response, route

GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# A 200 whose JSON stops mid-string.
MALFORMED = Fault(status=200, body=b'{"messages": [{"id": "trunc')
_ERRORS = {
    400: ("Bad Request", "badRequest", "INVALID_ARGUMENT"),
    401: ("Unauthorized", "authError", "UNAUTHENTICATED"),
    403: ("Forbidden", "forbidden", "PERMISSION_DENIED"),
    404: ("Not Found", "notFound", "NOT_FOUND"),
    429: ("Resource has been exhausted (e.g. check quota).", "rateLimitExceeded",
          "RESOURCE_EXHAUSTED"),
    500: ("Internal error encountered.", "backendError", "INTERNAL"),
    503: ("The service is currently unavailable.", "backendError", "UNAVAILABLE"),
}  # fmt: skip


def b64url(data: bytes) -> str:
    """base64url without padding, as Google sends it."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def google_error(code: int, message: str = "", reason: str = "", status: str = "") -> Any:
    """Google's JSON error body."""
    default = _ERRORS.get(code, ("Error", "unknown", "UNKNOWN"))
    message, reason, status = message or default[0], reason or default[1], status or default[2]
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status,
        }
    }


def forbidden_403() -> Any:
    """A permission 403 (the file is not shared with the caller)."""
    return google_error(
        403, "The caller does not have permission", "forbidden", "PERMISSION_DENIED"
    )


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
    """An authorized-user (refresh token) file written for one test."""

    path: Path
    client_id: str
    client_secret: str
    refresh_token: str


class GoogleApi(FakeApi):
    """The token endpoint plus the auth every Google API fake shares (see module doc)."""

    json_type: ClassVar[str] = "application/json; charset=UTF-8"
    _ids = itertools.count(1)

    def setup(self) -> None:
        """No accounts, tokens or grants; delegation refused unless ``expected_subject``."""
        self.accounts: dict[str, ServiceAccount] = {}
        self.users: dict[str, AuthorizedUser] = {}
        self.expected_subject: str | None = None
        self.revoked = False
        self.token_lifetime = 300
        self.tokens: dict[str, dict[str, Any]] = {}
        self.grants: list[dict[str, Any]] = []  # one record per token request
        self.expire_next = False  # the next API call finds its (live) token expired
        self.reject_all_tokens = False

    def error(self, status: int, detail: str) -> Response:
        """Google's error body for ``status``."""
        return Response(status, json=google_error(status))

    @property
    def token_uri(self) -> str:
        """Where the credential files written here send their token requests."""
        return f"{self.url}/token"

    def api_requests(self, contains: str = "") -> list[Request]:
        """Requests other than to the token endpoint, whose path contains ``contains``."""
        return [r for r in self.requests() if r.path != "/token" and contains in r.path]

    # -- credentials -------------------------------------------------------------------------

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

    # -- token endpoint ----------------------------------------------------------------------

    @route("POST", "/token", "token")
    def token(self, request: Request) -> Response:
        """A JWT-bearer or refresh-token grant, answered with an access token or an error."""
        if not request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return Response(400, json={"error": "invalid_request",
                                       "error_description": "Bad content type"})  # fmt: skip
        form = request.form()
        grant = form.get("grant_type")
        record: dict[str, Any] = {"grant_type": grant}
        self.grants.append(record)
        if grant == JWT_GRANT:
            status, answer, scopes = self._jwt_grant(form.get("assertion", ""), record)
        elif grant == "refresh_token":
            status, answer, scopes = self._refresh_grant(form, record)
        else:
            return Response(400, json={"error": "unsupported_grant_type",
                                       "error_description": f"Invalid grant_type: {grant}"})  # fmt: skip
        record["status"] = status
        if status != 200:
            return Response(status, json=answer)
        access = f"ya29.fake-{next(self._ids)}-{secrets.token_urlsafe(16)}"
        self.tokens[access] = {"scopes": scopes, "sub": record.get("sub"), "expired": False}
        record["token"] = access
        return Response(json={"access_token": access, "expires_in": self.token_lifetime,
                              "token_type": "Bearer"})  # fmt: skip

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
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe."
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
            answer = {"error": "invalid_grant",
                      "error_description": "Token has been expired or revoked."}  # fmt: skip
            return 400, answer, set()
        return 200, {}, set(str(form.get("scope", "")).split())

    # -- for the API routes ------------------------------------------------------------------

    def refuse(self, request: Request, needed: set[str]) -> Response | None:
        """401 unless the bearer token is live, 403 unless it has one of ``needed``."""
        info = self.tokens.get(request.token or "")
        if info and self.expire_next and not info["expired"]:
            self.expire_next = False
            info["expired"] = True
        if info is None or info["expired"] or self.reject_all_tokens:
            body = google_error(
                401, "Request had invalid authentication credentials.", status="UNAUTHENTICATED"
            )
            realm = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
            return Response(401, json=body, headers={"WWW-Authenticate": realm})
        if not info["scopes"] & needed:
            body = google_error(403, "Request had insufficient authentication scopes.",
                                "insufficientPermissions", "PERMISSION_DENIED")  # fmt: skip
            return Response(403, json=body)
        return None
