"""The HTTP client every API source shares: timeouts, retries, rate limits, streaming.

Why httpx: one client for plain and streaming requests with per-phase timeouts
(connect/read/write/pool), connection pooling, and typed transport errors that map cleanly
onto "transient" (retry) versus "terminal" (fail now). tenacity drives the retries.

- Every call is bounded: read/write (``timeout_seconds``) and connect
  (``connect_timeout_seconds``) timeouts per attempt, and ``total_seconds`` for the request
  with all its retries and waits (a server that accepts and never answers fails in time).
- Retries only on 429, 5xx (and any extra statuses an API documents as "not ready", e.g.
  Sprout's 202) and connection errors/timeouts; exponential backoff with full jitter, or
  ``Retry-After`` (seconds or HTTP date) when the server sends it, capped at ``max_backoff``.
- A per-API :class:`RateLimiter` (requests per minute and concurrent requests) shared by
  every client in the process, so a backfill never exceeds the documented limits; any
  :class:`Limiter` will do, e.g. :class:`~xoelt.sources.ratelimit.StoreLimiter`, which holds
  the limits across every process sharing the target's object store.
- Bodies can be streamed to disk (:meth:`HttpClient.download`) with constant memory.
- JSON bodies are decoded with orjson: a page of API messages parses about twice as fast as
  with the stdlib, which is most of an extraction's CPU once the server is fast.
- ``User-Agent: xoelt/<version>``. Auth headers and credentials are never logged or put in
  error messages; messages name the method and the URL without its query string.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

from pydantic import Field

from xoelt import __version__, progress
from xoelt.config.types import StrictModel
from xoelt.errors import SourceError
from xoelt.redact import redact as redact_all
from xoelt.redact import register as register_secret

if TYPE_CHECKING:
    import httpx
    from tenacity import RetryCallState

USER_AGENT = f"xoelt/{__version__}"


class RetryConfig(StrictModel):
    """The ``retry:`` block any HTTP source accepts (defaults suit production).

    ``timeout_seconds`` bounds each read (and write) of an attempt, ``connect_timeout_seconds``
    its connection; ``total_seconds`` bounds one request with every retry and wait included:
    no attempt starts, and no attempt's timeouts reach, past it.
    """

    max_attempts: int = Field(6, ge=1, le=20)
    initial_backoff: float = Field(1.0, ge=0)
    max_backoff: float = Field(120.0, ge=0)
    timeout_seconds: float = Field(300.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    total_seconds: float = Field(900.0, gt=0)


class TransientHTTPError(SourceError):
    """A retryable answer (429, 5xx, documented "not ready") or a dropped connection."""

    transient = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, transient=True)
        self.retry_after = retry_after


class NoSlotInBudget(SourceError):
    """A retry would have to wait for the rate limit past its request's retry budget."""


class Limiter(Protocol):
    """What the client asks of a rate limiter: one slot per request attempt."""

    def slot(self, deadline: float | None = None) -> AbstractContextManager[None]:
        """Hold a start (and a concurrency slot) while the request runs; raise
        :class:`NoSlotInBudget` rather than wait past ``deadline`` (``time.monotonic()``)."""
        ...


@dataclass
class RateLimiter:
    """At most ``per_minute`` starts in any 60 s, ``per_second`` in any 1 s, ``concurrent`` at once.

    Within this process only. ``minute`` is the length of a "minute" in seconds (shorter only
    in tests, see ``XOELT_RATE_LIMIT_MINUTE_SECONDS``).
    """

    per_minute: int | None = None
    concurrent: int | None = None
    per_second: int | None = None
    minute: float = 60.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.BoundedSemaphore | None = None
    _windows: list[tuple[int, float, deque[float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.concurrent:
            self._slots = threading.BoundedSemaphore(self.concurrent)
        for limit, span in ((self.per_minute, self.minute), (self.per_second, 1.0)):
            if limit:
                self._windows.append((limit, span, deque()))

    def _wait_for_start(self, deadline: float | None) -> None:
        while True:
            with self._lock:
                now = self.clock()
                delay = 0.0
                for limit, span, starts in self._windows:
                    while starts and now - starts[0] >= span:
                        starts.popleft()
                    if len(starts) >= limit:
                        delay = max(delay, span - (now - starts[0]))
                if delay <= 0:
                    for _, _, starts in self._windows:
                        starts.append(now)
                    return
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise NoSlotInBudget(f"the rate limit frees no slot for {delay:.0f} s")
            self.sleep(max(delay, 0.001))

    @contextmanager
    def slot(self, deadline: float | None = None) -> Generator[None]:
        """Hold a start (and a concurrency slot) for one request.

        With ``deadline`` (``time.monotonic()`` seconds), raise :class:`NoSlotInBudget` rather
        than wait for a start past it.
        """
        if self._slots is not None:
            self._slots.acquire()
        try:
            self._wait_for_start(deadline)
            yield
        finally:
            if self._slots is not None:
                self._slots.release()


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    key: str,
    per_minute: int | None = None,
    concurrent: int | None = None,
    per_second: int | None = None,
    minute: float = 60.0,
) -> RateLimiter:
    """The process-wide limiter for ``key`` (e.g. ``gladly:reports:<org>``), made on first use."""
    if minute != 60.0:
        key = f"{key}@{minute:g}s"
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter(
                per_minute=per_minute, concurrent=concurrent, per_second=per_second, minute=minute
            )
        return _LIMITERS[key]


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date relative to now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def decode_json(content: bytes, where: str, text: Callable[[], str] | None = None) -> Any:
    """``content`` decoded as JSON; otherwise ``SourceError("<where>: response is not JSON:
    <its first 120 characters>")``. ``text`` gives the body as text for that message
    (default: the bytes as UTF-8)."""
    import orjson

    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        body = text() if text is not None else content.decode("utf-8", "replace")
        snippet = body[:120].replace("\n", " ")
        raise SourceError(f"{where}: response is not JSON: {snippet!r}") from exc


def _where(method: str, url: Any) -> str:
    text = str(url)
    return f"{method} {text.split('?', 1)[0]}"


class HttpClient:
    """A retrying, rate-limited client for one API.

    ``auth`` is anything httpx accepts (``httpx.BasicAuth``, a callable flow) or None, and
    ``headers`` may hold a bearer token: neither is ever logged. ``auth_hint`` is appended
    to 401/403 messages (e.g. "check GLADLY_API_USER and GLADLY_API_TOKEN").
    """

    def __init__(
        self,
        base_url: str,
        *,
        retry: RetryConfig | None = None,
        limiter: Limiter | None = None,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = frozenset(),
        auth_hint: str = "",
        log: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.retry = retry or RetryConfig()
        self.limiter: Limiter = limiter or RateLimiter()
        self.retry_statuses = retry_statuses
        self.auth_hint = auth_hint
        self.log = log
        self._sleep = sleep
        self._parsed: dict[str, httpx.URL] = {}
        timeout = httpx.Timeout(
            self.retry.timeout_seconds, connect=self.retry.connect_timeout_seconds
        )
        from xoelt.sources._http_transport import transport

        self._client = httpx.Client(
            base_url=base_url,
            transport=transport(),
            auth=auth,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=timeout,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- public -----------------------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; return the (fully read) successful response.

        Each successful answer counts as one page of the extraction's progress.
        """
        response = self._with_retries(
            method, url, lambda budget: self._once(method, url, budget, kwargs)
        )
        progress.report(pages=1)
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send with retries and decode a JSON body; a malformed body is a clear error."""
        response = self.request(method, url, **kwargs)
        return decode_json(response.content, _where(method, url), lambda: response.text)

    def download(self, method: str, url: str, path: Path, **kwargs: Any) -> httpx.Response:
        """Stream the body to ``path`` (constant memory); a retry starts the file over."""

        def attempt(budget: _Budget) -> httpx.Response:
            with (
                self.limiter.slot(budget.slot_deadline),
                self._transport_errors(method, url),
                self._client.stream(method, url, timeout=budget.timeout(), **kwargs) as response,
            ):
                self.check_response(method, url, response, read=True)
                with path.open("wb") as fh:
                    for chunk in response.iter_bytes(1 << 20):
                        fh.write(chunk)
                return response

        response = self._with_retries(method, url, attempt)
        progress.report(pages=1)
        return response

    # -- internals --------------------------------------------------------------------------

    def _once(
        self, method: str, url: str, budget: _Budget, kwargs: dict[str, Any]
    ) -> httpx.Response:
        with self.limiter.slot(budget.slot_deadline), self._transport_errors(method, url):
            response = self._client.request(
                method, self._url(url), timeout=budget.timeout(), **kwargs
            )
            self.check_response(method, url, response, read=False)
            return response

    def _url(self, url: str) -> httpx.URL:
        """``url`` parsed once: httpx parses a string again on every request (30-60 µs of
        CPU here, about a tenth of a page request)."""
        parsed = self._parsed.get(url)
        if parsed is None:
            import httpx

            if len(self._parsed) >= 256:  # per-request URLs (ids in paths): stay bounded
                self._parsed.clear()
            parsed = self._parsed[url] = httpx.URL(url)
        return parsed

    @contextmanager
    def _transport_errors(self, method: str, url: str) -> Generator[None]:
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise TransientHTTPError(
                f"{_where(method, url)}: timed out ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientHTTPError(
                f"{_where(method, url)}: connection failed ({type(exc).__name__})"
            ) from exc

    def check_response(
        self, method: str, url: str, response: httpx.Response, *, read: bool
    ) -> None:
        """Raise for an answer that is not a success: TransientHTTPError (retried) or SourceError.

        Subclasses extend it for an API's quirks (e.g. Google's 403 quota errors). ``read``
        says the body is still streaming and must be read before it is inspected.
        """
        status = response.status_code
        if status < 300 and status not in self.retry_statuses:
            return
        if read:
            response.read()
        where = _where(method, url)
        detail = _error_detail(response)
        if status == 429 or status >= 500 or status in self.retry_statuses:
            raise TransientHTTPError(
                f"{where}: HTTP {status}{detail}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            hint = f"; {self.auth_hint}" if self.auth_hint else ""
            raise SourceError(
                f"{where}: HTTP {status} (authentication or permission failed){detail}{hint}"
            )
        raise SourceError(f"{where}: HTTP {status}{detail}")

    def _with_retries(
        self,
        method: str,
        url: str,
        attempt: Callable[[_Budget], httpx.Response],
    ) -> httpx.Response:
        budget = _Budget(self.retry)
        try:
            # Most requests succeed at once: tenacity's machinery (~100-150 µs of CPU a
            # request to set up, measured on a page of 100 rows) is built only after a failure.
            return attempt(budget)
        except TransientHTTPError as exc:
            budget.failures.append(exc)
            first = exc
        return self._retry(method, url, attempt, budget, first)

    def _retry(
        self,
        method: str,
        url: str,
        attempt: Callable[[_Budget], httpx.Response],
        budget: _Budget,
        first: TransientHTTPError,
    ) -> httpx.Response:
        """Retries after ``first``, attempt 1's failure, as if tenacity had run attempt 1."""
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_any,
        )
        from tenacity.stop import stop_base

        class _Spent(stop_base):
            def __init__(self, budget: _Budget) -> None:
                self.budget = budget

            def __call__(self, retry_state: RetryCallState) -> bool:
                return self.budget.spent(retry_state)

        policy = self.retry

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = getattr(exc, "retry_after", None)
            if hinted is not None:
                return min(hinted, policy.max_backoff)
            ceiling = min(
                policy.max_backoff, policy.initial_backoff * 2 ** (state.attempt_number - 1)
            )
            return random.uniform(0, ceiling)

        def before_sleep(state: RetryCallState) -> None:
            if self.log is not None and state.outcome is not None:
                self.log.warning(
                    "retrying",
                    request=_where(method, url),
                    attempt=state.attempt_number,
                    error=getattr(exc := state.outcome.exception(), "detail", str(exc)),
                    wait=round(state.next_action.sleep, 3) if state.next_action else None,
                )

        retrying = Retrying(
            retry=retry_if_exception_type(TransientHTTPError),
            # the next attempt must start before the budget ends, its wait included
            stop=stop_any(stop_after_attempt(policy.max_attempts), _Spent(budget)),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        failures = budget.failures
        replay = [first]

        def once() -> httpx.Response:
            if replay:  # attempt 1 ran in _with_retries: tenacity judges its failure
                raise replay.pop()
            try:
                return attempt(budget)
            except TransientHTTPError as exc:
                failures.append(exc)
                raise

        def gave_up(message: str, why: str = "") -> SourceError:
            tries = len(failures)
            return SourceError(
                f"{message} (gave up after {tries} attempt{'s' if tries != 1 else ''}{why}, "
                f"retry budget {policy.total_seconds:g} s)"
            )

        try:
            return retrying(once)
        except TransientHTTPError as exc:
            raise gave_up(exc.message) from exc
        except NoSlotInBudget as exc:
            raise gave_up(failures[-1].message, f"; {exc.message}") from failures[-1]


class _Budget:
    """One request's retry budget (``total_seconds``), and each attempt's timeouts within it.

    The clock starts when the first attempt gets its rate-limit slot: queueing behind other
    requests of a backfill is not the endpoint's fault. A retry must find its slot, and end
    its timeouts, before the budget does.
    """

    def __init__(self, policy: RetryConfig) -> None:
        self.policy = policy
        self.deadline: float | None = None
        self.failures: list[TransientHTTPError] = []

    @property
    def slot_deadline(self) -> float | None:
        return self.deadline if self.failures else None

    def timeout(self) -> httpx.Timeout:
        """This attempt's timeouts: the configured ones, cut to what the budget has left."""
        import httpx

        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.policy.total_seconds
        left = max(self.deadline - now, 0.001)
        return httpx.Timeout(
            min(self.policy.timeout_seconds, left),
            connect=min(self.policy.connect_timeout_seconds, left),
        )

    def spent(self, state: RetryCallState) -> bool:
        """tenacity stop condition: the next attempt, after its wait, would start too late."""
        if self.deadline is None:
            return False
        return time.monotonic() + (state.upcoming_sleep or 0.0) >= self.deadline


def _error_detail(response: httpx.Response) -> str:
    """A short, secret-free summary of an error body (JSON ``error``/``errors`` if present)."""
    try:
        body = response.json()
    except Exception:
        return ""
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return f": {body['error'][:200]}"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            e = errors[0]
            return (
                ": " + ", ".join(f"{k}={e[k]}" for k in ("attr", "code", "detail") if k in e)[:200]
            )
        if isinstance(body.get("error"), dict):
            err = body["error"]
            return f": {err.get('status', '')} {err.get('message', '')}"[:200]
    return ""


def redact(text: str, *secrets: str) -> str:
    """``text`` through :func:`xoelt.redact.redact`, with ``secrets`` registered first."""
    for secret in secrets:
        if secret:
            register_secret(secret)
    return redact_all(text)
