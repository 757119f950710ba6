"""A fake of BambooHR's API v1 (``/api/gateway.php/{company}/v1``), as routes on the kit.

It answers as the published API does: HTTP Basic with the API key as user name and any
password (401 otherwise, with BambooHR's ``X-BambooHR-Error-Message`` header, here echoing
the key it got so tests can check redaction); an unknown company is 404; without
``Accept: application/json`` it answers XML, BambooHR's default. Routes:

- ``report``: ``POST /reports/custom?format=JSON`` with ``{"title", "fields"}`` answers
  ``{"title", "fields": [{"id", "type", "name"}], "employees": [{"id", ...}]}``; fields the
  company does not have are left out of both; ``onlyCurrent=true`` leaves out inactive
  employees (the default includes them, as the docs say of the custom report).
- ``directory``: ``GET /employees/directory`` answers ``{"fields", "employees"}`` with
  :attr:`FakeBambooHr.directory_fields` (the company's sharing settings).
- ``meta``: ``GET /meta/fields`` answers the list of the company's fields.

Faults are scripted with :data:`FAULTS` (throttling is 503 with ``Retry-After``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tests.fakes.api import FakeApi, Fault, Request, Response, route

FAULTS: dict[str, Fault] = {
    "503-retry-after": Fault(status=503, body=b"", headers={"Retry-After": "1"}),
    "429": Fault(status=429, body=b""),
    "cut": Fault(cut=True),  # headers and half the body, then the connection closes
    "malformed": Fault(status=200, body=b'{"title": "x", "fields": [{"id": "firstN'),
    "html-200": Fault(status=200, body=b"<html>maintenance</html>", content_type="text/html"),
}

FIELD_TYPES = {"id": "int", "hireDate": "date", "status": "status"}


class FakeBambooHr(FakeApi):
    """One company's employees (``employees``: full records keyed by field id)."""

    def setup(self) -> None:
        """No company, key or employees until a test sets them."""
        self.company = ""
        self.key = ""
        self.employees: list[dict[str, Any]] = []
        self.fields: list[str] = []  # the company's field ids (meta/fields, the report)
        self.directory_fields: list[str] = []

    def guard(self, request: Request) -> Response | None:
        """Unknown company 404, wrong key 401 (the password is ignored)."""
        if request.params.get("company") != self.company:
            return Response(404, body=b"", headers={"X-BambooHR-Error-Message": "Not found"})
        supplied = request.headers.get("Authorization", "")
        try:
            user = base64.b64decode(supplied.removeprefix("Basic ")).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if not supplied.startswith("Basic ") or user != self.key:
            message = f"Invalid API key {user!r}"
            return Response(401, body=b"", headers={"X-BambooHR-Error-Message": message})
        return None

    def error(self, status: int, detail: str) -> Response:
        """BambooHR's errors: an empty body and the reason in a header."""
        return Response(status, body=b"", headers={"X-BambooHR-Error-Message": detail})

    def _answer_as(self, request: Request, payload: Any) -> Response:
        if request.headers.get("Accept") != "application/json":
            return Response(text="<?xml version='1.0'?><report/>", content_type="text/xml")
        return Response(json=payload)

    def _meta(self, field: str) -> dict[str, str]:
        return {"id": field, "type": FIELD_TYPES.get(field, "text"), "name": field.title()}

    @route("POST", "/api/gateway.php/{company}/v1/reports/custom", "report")
    def report(self, request: Request) -> Response:
        """A custom report of the requested fields the company has."""
        if request.arg("format") != "JSON":
            return self.error(400, "format must be one of CSV, PDF, XLS, XML, JSON")
        try:
            body = request.json()
        except ValueError:
            return self.error(400, "the request body is not JSON")
        wanted = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(wanted, list) or not wanted:
            return self.error(400, "fields is required")
        known = [f for f in wanted if f in self.fields]
        people = self.employees
        if request.arg("onlyCurrent") == "true":
            people = [e for e in people if e.get("status") != "Inactive"]
        rows = [{"id": e["id"], **{f: e.get(f) for f in known if f in e}} for e in people]
        fields = [self._meta(f) for f in known]
        return self._answer_as(
            request, {"title": body.get("title"), "fields": fields, "employees": rows}
        )

    @route("GET", "/api/gateway.php/{company}/v1/employees/directory", "directory")
    def directory(self, request: Request) -> Response:
        """The published directory: active employees, the shared fields."""
        shared = self.directory_fields
        people = [e for e in self.employees if e.get("status") != "Inactive"]
        rows = [{"id": e["id"], **{f: e.get(f) for f in shared if f in e}} for e in people]
        fields = [self._meta(f) for f in shared]
        return self._answer_as(request, {"fields": fields, "employees": rows})

    @route("GET", "/api/gateway.php/{company}/v1/meta/fields", "meta")
    def meta_fields(self, request: Request) -> Response:
        """Every field of the company."""
        return self._answer_as(request, [self._meta(f) for f in self.fields])
