"""``bamboohr_api``: a BambooHR employee snapshot (a custom report or the directory) as CSV.

One request per run against ``{base_url}/api/gateway.php/{company}/v1`` (``base_url``
defaults to ``https://api.bamboohr.com``), HTTP Basic with the API key as user name and
``x`` as password (BambooHR ignores the password), ``Accept: application/json``:

- ``mode: custom_report`` (default): ``POST /reports/custom?format=JSON`` with body
  ``{"title": ..., "fields": [...]}`` and, when ``only_current`` is set, the query parameter
  ``onlyCurrent=true|false``. The columns are the configured ``fields``, in that order.
  BambooHR's JSON answer is ``{"title", "fields": [{"id", "type", "name"}], "employees":
  [{"id": ..., "<field id>": ...}]}``; list ``id`` among the fields to keep the employee id.
- ``mode: directory``: ``GET /employees/directory``, answered as ``{"fields": [...],
  "employees": [...]}``. The columns are ``id`` followed by the ids of the answer's
  ``fields`` list, in its order (records carry ``id`` though the list leaves it out). The
  directory holds what the company shares in its directory settings (it must be enabled),
  so its columns can change between runs when those settings change.

``keep: {field: customClient, values: [Warby Parker]}`` keeps only the employees whose
field (compared as text, a cell as written below) is one of ``values`` (BambooHR's custom
report filters on nothing but ``lastChanged``), for rows that must never land in bronze (the
manifest counts those dropped). To split one roster into several silver tables, load it once
and derive a source per part instead (``from_source`` with ``where``, see
``pipelines/core/bamboohr_roster_daily.yaml``): one request, one bronze table.

Cells follow xoelt's CSV convention: a JSON ``null`` or an absent key is a missing value
(NULL in bronze), ``""`` stays an empty string, booleans are ``true``/``false`` and objects
or lists compact JSON with sorted keys. A configured field the answer's ``fields`` list does
not name is still a column (all missing) and is noted as a ``fields_not_in_answer`` finding.

**A snapshot.** BambooHR answers with the roster as it is now; the window only decides which
partition the snapshot fills. Use ``load_strategy: full_refresh`` (one immutable snapshot per
day) or ``historical`` (SCD2 history of each employee in silver). The manifest records the
mode, the fields, the rows and the snapshot time. A backfill of past days therefore fills
each of them with today's roster: BambooHR's history is not reconstructed.

The answer is not paginated and is held in memory once (a roster, not an event stream); a
body that is cut or not valid JSON fails the stage, so no partial file is published. Rate
limiting: BambooHR publishes no numeric limits; when throttling it answers 503 with
``Retry-After`` (429 on some endpoints), both retried by the shared client, honouring the
header up to ``retry.max_backoff``. 401/403 are terminal and name the variables to check.

Unverified against the vendor (see the report of issue 11): the exact placement of
``onlyCurrent`` on the custom report (a query parameter here, as in BambooHR's company
report endpoint), whether numeric field ids come back under the same key in ``employees``,
and the throttling behaviour (taken from third-party guides, not BambooHR's reference). The
vendor marks ``/reports/custom`` as to be replaced by its Datasets API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from xoelt.config.types import BaseUrl, Secret, StrictModel
from xoelt.errors import ConfigError, SourceError
from xoelt.findings import Finding
from xoelt.sources.base import CsvSink, Source, env_label, probe_retry, secret_ref
from xoelt.sources.http import HttpClient, RetryConfig, shared_limiter
from xoelt.timewindow import TimeWindow

KEY_ENV = "BAMBOOHR_API_KEY"
COMPANY_ENV = "BAMBOOHR_COMPANY"
BASE_URL = "https://api.bamboohr.com"
COMPANY = re.compile(r"^[A-Za-z0-9_-]+$")  # the company's subdomain (a URL path segment)
FIELD_ID = re.compile(r"^[A-Za-z0-9_.-]+$")  # names (firstName) and numeric ids (4670)


def _company(value: str) -> str:
    if not COMPANY.match(value):
        raise ValueError(f"company {value!r} must be letters, digits, '_' or '-'")
    return value


class KeepRows(StrictModel):
    """``keep:``: the employees whose ``field`` is one of ``values`` (the others are dropped)."""

    field: str = Field(pattern=FIELD_ID.pattern)
    values: list[str] = Field(min_length=1)


class BambooHrConfig(StrictModel):
    """The ``extractor:`` block of a ``bamboohr_api`` source."""

    api_key: Secret | None = None  # ${VAR}; default ${BAMBOOHR_API_KEY}
    company: str | None = None  # the subdomain; default: $BAMBOOHR_COMPANY, read at run time
    base_url: BaseUrl = BASE_URL
    mode: Literal["custom_report", "directory"] = "custom_report"
    fields: list[str] = Field(default_factory=list)  # custom_report only: the columns
    only_current: bool | None = None  # custom_report only; None: BambooHR's default
    title: str = "xoelt extract"
    keep: KeepRows | None = None
    retry: RetryConfig = RetryConfig()

    @field_validator("company")
    @classmethod
    def _cid(cls, value: str | None) -> str | None:
        return None if value is None else _company(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if not FIELD_ID.match(f)]
        if bad:
            raise ValueError(f"not a BambooHR field id: {', '.join(map(repr, bad))}")
        dupes = sorted({f for f in value if value.count(f) > 1})
        if dupes:
            raise ValueError(f"duplicate fields: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _mode(self) -> BambooHrConfig:
        if self.mode == "custom_report" and not self.fields:
            raise ValueError("mode custom_report needs fields (BambooHR field ids, e.g. id)")
        if self.mode == "custom_report" and self.keep and self.keep.field not in self.fields:
            raise ValueError(f"keep.field {self.keep.field!r} is not one of fields")
        if self.mode == "directory" and (self.fields or self.only_current is not None):
            raise ValueError(
                "mode directory takes neither fields nor only_current: its columns are the "
                "fields its answer lists (set by the company's directory sharing)"
            )
        return self


def request_of(config: BambooHrConfig, company: str) -> tuple[str, str, dict[str, Any]]:
    """(method, absolute URL, httpx keyword arguments) of the one request a run makes."""
    root = f"{config.base_url}/api/gateway.php/{company}/v1"
    if config.mode == "directory":
        return "GET", f"{root}/employees/directory", {}
    params = {"format": "JSON"}
    if config.only_current is not None:
        params["onlyCurrent"] = "true" if config.only_current else "false"
    body = {"title": config.title, "fields": list(config.fields)}
    return "POST", f"{root}/reports/custom", {"params": params, "json": body}


def _cell(value: Any) -> Any:
    """A JSON value as a CSV cell: strings as they are, None missing, JSON for the nested."""
    if value is None or type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


class _BambooHrClient(HttpClient):
    """The shared client, adding the reason BambooHR gives in ``X-BambooHR-Error-Message``
    (its error bodies are usually empty) to every error message (redacted like all)."""

    def check_response(self, method: str, url: str, response: Any, *, read: bool) -> None:
        try:
            super().check_response(method, url, response, read=read)
        except SourceError as exc:
            reason = response.headers.get("X-BambooHR-Error-Message", "").strip()
            if not reason:
                raise
            raise exc.prefixed("", f" (BambooHR: {reason[:200]})") from None


def _answer_fields(answer: dict[str, Any], where: str) -> list[str]:
    """The ids of the answer's ``fields`` list (an error if it is not a list of objects)."""
    fields = answer.get("fields")
    if not isinstance(fields, list) or not all(
        isinstance(f, dict) and isinstance(f.get("id"), str | int) for f in fields
    ):
        raise SourceError(f"{where}: the answer has no 'fields' list of objects with an id")
    return [str(f["id"]) for f in fields]


class BambooHrSource(Source[BambooHrConfig], source_type="bamboohr_api"):
    """A snapshot of BambooHR's employees, one row per employee."""

    @classmethod
    def describe(cls, config: BambooHrConfig, window: TimeWindow) -> dict[str, Any]:
        method, url, kwargs = request_of(config, env_label(config.company, COMPANY_ENV))
        out: dict[str, Any] = {
            "mode": f"{config.mode} snapshot: the roster at run time; the window only "
            "names the partition",
            "request": f"{method} {url}",
        }
        if "json" in kwargs:
            out.update(params=kwargs["params"], body=kwargs["json"], columns=config.fields)
        else:
            out["columns"] = "id, then the fields the directory's answer lists"
        if config.keep:
            out["keep"] = f"rows whose {config.keep.field} is one of {config.keep.values}"
        return out

    @classmethod
    def credential_vars(cls, config: BambooHrConfig) -> list[str]:
        """The key variable, and ``BAMBOOHR_COMPANY`` unless ``company`` is set."""
        key = secret_ref(config.api_key, KEY_ENV, "api_key").var
        return [key] if config.company else [key, COMPANY_ENV]

    def _client(self, retry: RetryConfig) -> tuple[HttpClient, str]:
        """A client with the key as Basic user name, and the company it is for."""
        import httpx

        ref = secret_ref(self.config.api_key, KEY_ENV, "api_key")
        key = ref.resolve(self.ctx.env).get_secret_value()  # registers it for redaction
        company = self.config.company
        if company is None:
            company = self.ctx.env.get(COMPANY_ENV, "")
            if not company:
                raise ConfigError(f"environment variable {COMPANY_ENV} is not set (for company)")
            try:
                company = _company(company)
            except ValueError as exc:
                raise ConfigError(f"{COMPANY_ENV}: {exc}") from None
        where = "company" if self.config.company else COMPANY_ENV
        client = _BambooHrClient(
            self.config.base_url,
            retry=retry,
            # No published limit: two requests at once per company keeps a backfill (one
            # process, many windows) from being the burst that draws the 503s.
            limiter=shared_limiter(f"bamboohr:{company}", concurrent=2),
            auth=httpx.BasicAuth(key, "x"),
            headers={"Accept": "application/json"},
            auth_hint=f"check {ref.var} (a revoked key, or one of another company than {where})",
            log=self.ctx.log,
        )
        return client, company

    def extract(self, sink: CsvSink) -> None:
        """Fetch the snapshot and write one row per employee."""
        cfg = self.config
        client, company = self._client(cfg.retry)
        method, url, kwargs = request_of(cfg, company)
        where = f"{method} {url}"
        snapshot_at = datetime.now(UTC).isoformat(timespec="seconds")
        with client:
            answer = client.json(method, url, **kwargs)
        if not isinstance(answer, dict):
            raise SourceError(f"{where}: expected a JSON object, got {type(answer).__name__}")
        employees = answer.get("employees")
        if not isinstance(employees, list) or not all(type(e) is dict for e in employees):
            raise SourceError(f"{where}: the answer has no 'employees' list of objects")
        listed = _answer_fields(answer, where)
        if cfg.mode == "directory":
            columns = ["id", *(f for f in listed if f != "id")]
        else:
            columns = list(cfg.fields)
            absent = [f for f in columns if f not in listed and f != "id"]
            if absent:
                self.ctx.note(
                    Finding(
                        "fields_not_in_answer",
                        f"BambooHR's answer does not list the field(s) {', '.join(absent)}; "
                        "their columns are empty (check the field ids and the key's access)",
                        severity="warn",
                        count=len(absent),
                        data={"fields": absent},
                    )
                )
        kept = employees
        if cfg.keep:
            wanted = set(cfg.keep.values)
            kept = [e for e in employees if _cell(e.get(cfg.keep.field)) in wanted]
            sink.details["dropped_by_keep"] = len(employees) - len(kept)
        sink.open(columns)
        sink.write_many_values([[_cell(e.get(c)) for c in columns] for e in kept])
        sink.details.update(
            mode=cfg.mode,
            company=company,
            fields=columns,
            only_current=cfg.only_current,
            rows=len(kept),
            snapshot_at=snapshot_at,
        )

    def probe(self, timeout: float) -> str:
        """``GET /meta/fields``: the key is accepted for the company (a small answer)."""
        client, company = self._client(probe_retry(timeout))
        url = f"{self.config.base_url}/api/gateway.php/{company}/v1/meta/fields"
        with client:
            answer = client.json("GET", url)
        if not isinstance(answer, list):
            raise SourceError(f"GET {url}: expected a JSON list of fields")
        return f"GET {url}: HTTP 200, company {company}, {len(answer)} fields visible"
