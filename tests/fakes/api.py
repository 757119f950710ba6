"""A fake API: routes, scripted faults and a request log, independent of the socket.

A fake is a :class:`FakeApi` subclass. Methods marked ``@route(method, pattern)`` answer a
:class:`Request` with a :class:`Response` over the state :meth:`FakeApi.setup` builds (and
:meth:`FakeApi.reset` rebuilds for the next test); :meth:`FakeApi.guard` holds API-wide checks
(auth, content negotiation) and :meth:`FakeApi.error` the API's error body. A :class:`Fault`
scripts one misbehaviour for the next request(s) of a route, or for request number N.
``tests.fakes.server`` puts the API on a socket. :meth:`FakeApi.limit` enforces a rate limit
on a group of routes as the real API would (429 beyond it) and records what clients did
(:class:`Limit`: peak concurrency, the most arrivals in any window, the 429s).
"""

from __future__ import annotations

import json as _json
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

FOREVER = 1 << 62  # Fault(times=FOREVER): every request of the route
_NO_JSON: Any = object()
_MARKS: dict[Callable[..., Any], tuple[str, str, str | None]] = {}
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True, eq=False)
class Request:
    """One request as the fake received it; the request log is a list of these."""

    method: str
    raw_path: str  # as sent, percent-encoded
    query: dict[str, list[str]]
    headers: httpx.Headers  # case-insensitive
    body: bytes
    at: float  # time.monotonic() on arrival
    number: int  # 1-based over every request since the last reset
    route: str | None = None  # None: no route matched (answered 404)
    params: dict[str, str] = field(default_factory=dict)  # from the pattern, decoded
    generation: int = field(default=0, repr=False)

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        return unquote(self.raw_path)

    @property
    def token(self) -> str | None:
        """The bearer token of the ``Authorization`` header, if any."""
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        return self.query.get(name, [default])[0]

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return _json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (first values)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class Response:
    """An answer: a status, headers and a body given as ``json``, ``text`` or raw ``body``.

    ``content_type`` defaults to the API's JSON type for ``json``, UTF-8 text for ``text`` and
    ``application/octet-stream`` for a raw body.
    """

    def __init__(
        self,
        status: int = 200,
        *,
        json: Any = _NO_JSON,
        text: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.content_type = content_type
        if json is not _NO_JSON:
            self.body = _json.dumps(json).encode()
        elif text is not None:
            self.body = text.encode()
            self.content_type = content_type or "text/plain; charset=utf-8"
        else:
            self.body = body
            self.content_type = content_type or "application/octet-stream"

    def json(self) -> Any:
        """The body parsed as JSON (for a :attr:`Fault.mangle`)."""
        return _json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.body[:60]!r})"


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, used by the next ``times`` requests it applies to.

    In order: wait ``delay`` seconds; ``drop`` closes the connection without an answer; a
    ``status`` or ``body`` is answered instead of the route (``body`` defaults to the API's
    error for the status, ``status`` to 200; a ``bytes``/``str`` body is sent as is, anything
    else as JSON); otherwise the route answers, through ``mangle(request, response)`` if set.
    ``cut`` sends the headers and half the body, then closes. ``path`` limits the fault to
    requests whose decoded path contains it.
    """

    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    drop: bool = False
    cut: bool = False
    delay: float = 0.0
    times: int = 1
    path: str = ""
    mangle: Callable[[Request, Response], Response] | None = None


@dataclass
class Limit:
    """A rate limit on some routes, and what clients did against it.

    At most ``concurrent`` requests in flight (from arrival until the answer is ready) and
    ``per_window`` arrivals in any ``window`` seconds; beyond either the request is answered
    429 (the API's error body). Each admitted
    request is held ``hold`` seconds before its answer (a slow report). Arrival times are the
    server's ``time.monotonic()``.
    """

    routes: frozenset[str]
    concurrent: int | None = None
    per_window: int | None = None
    window: float = 60.0
    hold: float = 0.0
    in_flight: int = 0
    peak_concurrency: int = 0
    arrivals: list[float] = field(default_factory=list)
    rejected: int = 0
    why: list[str] = field(default_factory=list)  # what each 429 was for
    _refused: set[int] = field(default_factory=set, repr=False)

    def peak_per_window(self) -> int:
        """The most arrivals in any half-open ``[t, t + window)``."""
        times, best, lo = sorted(self.arrivals), 0, 0
        for hi, at in enumerate(times):
            while at - times[lo] >= self.window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def _arrive(self, request: Request) -> None:
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        self.arrivals.append(request.at)
        recent = sum(1 for t in self.arrivals if request.at - t < self.window)
        over = []
        if self.concurrent is not None and self.in_flight > self.concurrent:
            over.append(f"request {request.number}: {self.in_flight} in flight")
        if self.per_window is not None and recent > self.per_window:
            over.append(f"request {request.number}: {recent} in {self.window:g} s")
        if over:
            self.rejected += 1
            self.why.extend(over)
            self._refused.add(request.number)


@dataclass
class _Scripted:
    fault: Fault
    left: int


def route(method: str, pattern: str, name: str | None = None) -> Callable[[H], H]:
    """Mark a :class:`FakeApi` method as the handler of ``method pattern``.

    ``{param}`` in the pattern matches one path segment (percent-decoded into
    ``request.params``); ``name`` (default: the method's name) is what faults and
    :meth:`FakeApi.requests` refer to.
    """

    def mark(handler: H) -> H:
        _MARKS[handler] = (method.upper(), pattern, name)
        return handler

    return mark


def _compile(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", pattern)
    return re.compile(
        "".join(f"(?P<{p}>[^/]+)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    )


class FakeApi:
    """A router over one API's state, with scripted faults and a request log (see module)."""

    json_type: ClassVar[str] = "application/json"

    def __init__(self) -> None:
        self.url = ""  # set by the server, e.g. http://127.0.0.1:40123
        self._routes: list[tuple[str, re.Pattern[str], str]] = []
        self._handlers: dict[str, Callable[[Request], Any]] = {}
        for klass in reversed(type(self).__mro__):
            for attr, value in vars(klass).items():
                if callable(value) and value in _MARKS:
                    method, pattern, name = _MARKS[value]
                    name = name or attr
                    if name in self._handlers:
                        raise ValueError(f"{type(self).__name__}: two routes named {name!r}")
                    self._routes.append((method, _compile(pattern), name))
                    self._handlers[name] = getattr(self, attr)
        self._lock = threading.Lock()
        self._log: list[Request] = []
        self._queues: dict[str, list[_Scripted]] = {}
        self._numbered: dict[int, Fault] = {}
        self.generation = 0
        self.errors: list[str] = []  # tracebacks of handlers that raised (a bug in the fake)
        self.in_flight = self.peak_concurrency = 0
        self._limits: list[Limit] = []
        self.reset()

    # -- to override -------------------------------------------------------------------------

    def setup(self) -> None:
        """Build the API's state; called on creation and by :meth:`reset`."""

    def guard(self, request: Request) -> Response | None:
        """API-wide checks before faults and routes (auth, ...): an answer ends the request."""
        return None

    def error(self, status: int, detail: str) -> Response:
        """The API's error answer (unknown routes, scripted faults without a body)."""
        return Response(status, json={"error": detail})

    # -- for tests ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget faults, log and state; a request still in flight will not be answered."""
        with self._lock:
            self.generation += 1
            self._log, self._queues, self._numbered = [], {}, {}
            self.errors, self.in_flight, self.peak_concurrency = [], 0, 0
            self._limits = []
        self.setup()

    def fault(self, route: str, *faults: Fault) -> None:
        """Queue ``faults`` for the coming requests of ``route``, used one per request in order."""
        if route not in self._handlers:
            known = sorted(self._handlers)
            raise KeyError(f"{type(self).__name__} has no route {route!r}: {known}")
        with self._lock:
            self._queues.setdefault(route, []).extend(_Scripted(f, f.times) for f in faults)

    def fault_on(self, number: int, fault: Fault) -> None:
        """Use ``fault`` for request ``number`` (1-based, any route), once."""
        with self._lock:
            self._numbered[number] = fault

    def limit(
        self,
        *routes: str,
        concurrent: int | None = None,
        per_window: int | None = None,
        window: float = 60.0,
        hold: float = 0.0,
    ) -> Limit:
        """Enforce (and record) a limit shared by ``routes`` until the next reset."""
        unknown = sorted(set(routes) - set(self._handlers))
        if unknown:
            raise KeyError(
                f"{type(self).__name__} has no route {unknown}: {sorted(self._handlers)}"
            )
        limit = Limit(frozenset(routes), concurrent, per_window, window, hold)
        with self._lock:
            self._limits.append(limit)
        return limit

    def pending_faults(self) -> list[Fault]:
        """Scripted faults not (fully) used yet."""
        with self._lock:
            queued = [s.fault for q in self._queues.values() for s in q if s.left > 0]
            return queued + list(self._numbered.values())

    def requests(self, route: str | None = None) -> list[Request]:
        """Every request received since the reset, or those of ``route``, in arrival order."""
        with self._lock:
            return [r for r in self._log if route is None or r.route == route]

    # -- for the server ----------------------------------------------------------------------

    def receive(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Request:
        """Route and log one request (the server calls :meth:`respond` next, then :meth:`done`)."""
        split = urlsplit(target)
        name, params = None, {}
        for verb, regex, route_name in self._routes:
            found = regex.fullmatch(split.path) if verb == method else None
            if found:
                name = route_name
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                break
        with self._lock:
            request = Request(
                method, split.path, parse_qs(split.query), httpx.Headers(headers), body,
                time.monotonic(), len(self._log) + 1, name, params, self.generation,
            )  # fmt: skip
            self._log.append(request)
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
            for limit in self._limits:
                if name in limit.routes:
                    limit._arrive(request)
        return request

    def done(self, request: Request) -> None:
        """The request is answered (or abandoned)."""
        with self._lock:
            if request.generation == self.generation:
                self.in_flight -= 1

    def respond(self, request: Request) -> tuple[Response | None, bool]:
        """(answer or None to drop the connection, whether to cut the body halfway).

        A guard, route or mangle that raises is a bug in the fake: 500, and the traceback
        goes to :attr:`errors` (``FakeApis.use`` fails the test on it).
        """
        try:
            return self._respond(request)
        except Exception:
            self.errors.append(traceback.format_exc())
            return Response(500, json={"error": "the fake API raised (see FakeApi.errors)"}), False
        finally:
            # A limit counts a request as the API would: until its answer is ready, before
            # it is sent, so a client that has the answer never overlaps it.
            with self._lock:
                if request.generation == self.generation:
                    for limit in self._limits:
                        if request.route in limit.routes:
                            limit.in_flight -= 1

    def _respond(self, request: Request) -> tuple[Response | None, bool]:
        if request.route is None:
            return self.error(404, f"no route for {request.method} {request.raw_path}"), False
        early = self.guard(request)
        if early is not None:
            return early, False
        with self._lock:
            limits = [li for li in self._limits if request.route in li.routes]
        if any(request.number in li._refused for li in limits):
            return self.error(429, "rate limit exceeded"), False
        for li in limits:
            time.sleep(li.hold)
        fault = self._take_fault(request)
        if fault is None:
            return self._answer(request), False
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop or request.generation != self.generation:
            return None, False
        if fault.status is None and fault.body is None:
            response = self._answer(request)
            if fault.mangle is not None:
                response = fault.mangle(request, response)
        elif fault.body is None:
            response = self.error(fault.status or 200, "scripted fault")
        else:
            status, ctype = fault.status or 200, fault.content_type or self.json_type
            if isinstance(fault.body, bytes | str):
                raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
                response = Response(status, body=raw, content_type=ctype)
            else:
                response = Response(status, json=fault.body, content_type=fault.content_type)
        response.headers.update(fault.headers)
        return response, fault.cut

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            if request.generation != self.generation:
                return None
            if request.number in self._numbered:
                return self._numbered.pop(request.number)
            for scripted in self._queues.get(request.route or "", []):
                if scripted.left > 0 and scripted.fault.path in request.path:
                    scripted.left -= 1
                    return scripted.fault
        return None

    def _answer(self, request: Request) -> Response:
        answer = self._handlers[request.route or ""](request)
        return answer if isinstance(answer, Response) else Response(json=answer)
