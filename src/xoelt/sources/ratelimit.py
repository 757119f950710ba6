"""Rate limits that hold across every xoelt process sharing a target (other pods included).

Gladly allows 2 report requests at once and 10 a minute *per organisation*, Sprout 60 a
minute per customer account: limits of the API account, not of one client. A
:class:`StoreLimiter` keeps them in one small JSON object per API account in the target's
object store (``<stage bucket>/ratelimits/<api>/<account>.json``), changed only through
:meth:`~xoelt.storage.base.ObjectStore.update` (S3: GET then a PUT with ``If-Match`` on the
ETag, or ``If-None-Match: *`` to create; locally an ``flock`` around the file). Two
primitives:

- **leases** (``concurrent``): a request holds one while it runs. A lease expires
  ``lease_seconds`` after its last renewal; a thread renews the process's leases every third
  of that, so a long download keeps its lease, while one of a killed process (SIGKILL, a lost
  pod) is taken over once stale (and logged).
- **a per-minute budget** (``per_minute``): a sliding window of claimed starts, each
  ``[wall time, count, claim id]``. A process claims at most 1/100 of the budget at once and
  spends it within ``minute / 100`` seconds (at least 0.25 s), handing back what it did not
  use with its next claim, so an API allowed 10 million a minute costs one store update per
  100,000 requests, and Sprout's 60 one per request. A start counts against the window for a
  minute plus that spending time: a claim's requests may start that much after it, and it is
  a margin for network latency and clock skew between pods (times are wall clock).

Waiting is bounded (``max_wait_seconds``, then a SourceError naming the limit and its holders)
and logged (when it starts, then every 30 s). Each process still has its in-process
:class:`~xoelt.sources.http.RateLimiter` in front (threads of one process queue there, not on
the store), and ``per_second`` stays per process (a store round trip per request would cost
more than the limit allows). The adapters declare their documented limits as
:class:`RateLimits` data; a source's ``rate_limit:`` block overrides any field.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field

from xoelt.config.types import StrictModel
from xoelt.errors import SourceError, XoeltError
from xoelt.sources.http import Limiter, NoSlotInBudget, RateLimiter, shared_limiter

if TYPE_CHECKING:
    from xoelt.storage.base import ObjectStore

PREFIX = "ratelimits/"
BLOCKS = 100  # a claim takes at most 1/BLOCKS of a per-minute budget, spent in 1/BLOCKS minute
LOG_EVERY = 30.0  # seconds between "still waiting" lines
MAX_POLL = 0.5  # seconds between looks at a full set of leases (one GET each)
MARGIN = 0.25  # seconds, at least: a claim's spending time, and room for latency and skew


class RateLimits(StrictModel):
    """An API account's limits: an adapter's documented default, or a ``rate_limit:`` block.

    ``concurrent`` and ``per_minute`` hold across every process sharing the target's object
    store; ``per_second`` within one process. ``max_wait_seconds`` bounds a wait for a lease
    or budget; ``lease_seconds`` is how long a lease outlives its holder's last renewal.
    """

    concurrent: int | None = Field(None, ge=1)
    per_minute: int | None = Field(None, ge=1)
    per_second: int | None = Field(None, ge=1)
    max_wait_seconds: float = Field(1800.0, gt=0)
    lease_seconds: float = Field(60.0, ge=1)

    def merged(self, override: RateLimits | None) -> RateLimits:
        """These limits with every field ``override`` sets replaced."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True))


@dataclass
class SharedLimits:
    """Where a run's cross-process limits live: the target's store and its stage bucket.

    ``minute`` is the length of a rate-limit minute in seconds: 60, except in tests
    (``XOELT_RATE_LIMIT_MINUTE_SECONDS``), so a budget can be exercised in seconds.
    """

    store: ObjectStore
    bucket: str
    minute: float = 60.0
    prefix: str = PREFIX
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def key(self, name: str) -> str:
        """The state object of the API account ``name`` (``gladly-reports/<host>``)."""
        parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", p) for p in name.split("/") if p]
        return self.prefix + "/".join(parts) + ".json"


def limiter_for(
    shared: SharedLimits | None, name: str, limits: RateLimits, log: Any = None
) -> Limiter:
    """The limiter for the API account ``name`` (e.g. ``sprout/<customer id>``; never a secret).

    Across processes through ``shared`` when it is given and ``limits`` has a concurrency or
    per-minute limit; otherwise (``plan``-free unit use, ``doctor`` probes) this process's.
    """
    minute = shared.minute if shared is not None else 60.0
    local = shared_limiter(
        f"{name}|{limits.concurrent}|{limits.per_minute}|{limits.per_second}",
        per_minute=limits.per_minute,
        concurrent=limits.concurrent,
        per_second=limits.per_second,
        minute=minute,
    )
    if shared is None or not (limits.concurrent or limits.per_minute):
        return local
    return StoreLimiter(shared, name, limits, local, log)


@dataclass
class _Grant:
    """What one look at the state gave: a lease/start, or how long to wait and for whom."""

    ok: bool
    at: float = 0.0
    count: int = 0
    wait: float = 0.0
    holders: list[str] = field(default_factory=list)
    taken_over: list[str] = field(default_factory=list)
    recent: int = 0


class StoreLimiter:
    """Leases and a per-minute budget for one API account, in the target's object store."""

    def __init__(
        self,
        shared: SharedLimits,
        name: str,
        limits: RateLimits,
        local: RateLimiter,
        log: Any = None,
    ) -> None:
        self.shared, self.name, self.limits, self.local, self.log = (
            shared, name, limits, local, log
        )  # fmt: skip
        self.key = shared.key(name)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.validity = max(shared.minute / BLOCKS, MARGIN)
        self.horizon = shared.minute + self.validity
        self.block = max(1, (limits.per_minute or 0) // BLOCKS)
        self._lock = threading.Lock()  # the fields below
        self._claiming = threading.Lock()  # one budget claim at a time
        self._held: set[str] = set()
        self._tokens, self._until, self._claim, self._used = 0, 0.0, "", 0
        self._renewer: threading.Thread | None = None

    @contextlib.contextmanager
    def slot(self, deadline: float | None = None) -> Generator[None]:
        """A lease (if ``concurrent``) and a start for one request, this process's limiter first."""
        with self.local.slot(deadline):
            lease = self._acquire(deadline)
            try:
                yield
            finally:
                if lease is not None:
                    self._release(lease)

    # -- acquiring --------------------------------------------------------------------------

    def _acquire(self, deadline: float | None) -> str | None:
        if self.limits.concurrent is None:
            with self._claiming:
                with self._lock:
                    if self._tokens > 0 and self.shared.clock() < self._until:
                        self._tokens -= 1
                        self._used += 1
                        return None
                self._wait_for(None, deadline)
                return None
        lease = uuid.uuid4().hex[:12]
        self._wait_for(lease, deadline)
        return lease

    def _wait_for(self, lease: str | None, deadline: float | None) -> None:
        """Claim a lease (``lease`` given) or a block of starts, waiting as long as allowed."""
        started = time.monotonic()
        poll, logged = 0.05, -LOG_EVERY
        with self._lock:
            back = (self._claim, self._used) if self._claim else None
        while True:
            claim = uuid.uuid4().hex[:8]
            take = functools.partial(self._take, lease=lease, claim=claim, back=back)
            grant = self.shared.store.update(self.shared.bucket, self.key, take)
            if grant.taken_over and self.log is not None:
                self.log.warning(
                    "took over stale rate-limit leases", limit=self.name, owners=grant.taken_over
                )
            if grant.ok:
                self._granted(lease, claim, grant.count, grant.at)
                if time.monotonic() - started > 1.0 and self.log is not None:
                    self.log.info(
                        "rate limit slot granted", limit=self.name,
                        waited=round(time.monotonic() - started, 1),
                    )  # fmt: skip
                return
            back = None  # handed back with the state just written (or nothing to hand back)
            with self._lock:
                self._claim = ""
            waited = time.monotonic() - started
            delay = max(grant.wait, poll) * random.uniform(1.0, 1.25)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise NoSlotInBudget(f"the shared rate limit {self.name} frees no slot in time")
            if waited + delay > self.limits.max_wait_seconds:
                raise SourceError(self._too_long(waited, grant))
            if self.log is not None and waited - logged >= LOG_EVERY:
                logged = waited
                self.log.info(
                    "waiting for the shared rate limit", limit=self.name, key=self.key,
                    holders=grant.holders, recent_starts=grant.recent,
                    waited=round(waited, 1), next_look=round(delay, 2),
                )  # fmt: skip
            self.shared.sleep(delay)
            poll = min(poll * 1.5, MAX_POLL)

    def _too_long(self, waited: float, grant: _Grant) -> str:
        held = f"{len(grant.holders)} of {self.limits.concurrent} leases held by " + (
            ", ".join(sorted(set(grant.holders))) or "nobody"
        )
        budget = f"{grant.recent} of {self.limits.per_minute} starts in the last minute"
        return (
            f"rate limit {self.name}: waited {waited:.0f} s (max_wait_seconds "
            f"{self.limits.max_wait_seconds:g}) without a slot ({held}; {budget}); other xoelt "
            f"processes share it through {self.shared.store.uri(self.shared.bucket, self.key)}"
        )

    def _granted(self, lease: str | None, claim: str, count: int, now: float) -> None:
        with self._lock:
            if lease is not None:
                self._held.add(lease)
                if self._renewer is None:
                    self._renewer = threading.Thread(
                        target=self._renew, name=f"lease-{self.name}", daemon=True
                    )
                    self._renewer.start()
            elif self.limits.per_minute:
                self._claim, self._used = claim, 1
                self._tokens, self._until = count - 1, now + self.validity

    def _take(
        self,
        current: bytes | None,
        *,
        lease: str | None,
        claim: str,
        back: tuple[str, int] | None,
    ) -> tuple[bytes | None, _Grant]:
        """The state change of one claim (:meth:`ObjectStore.update` may rerun it).

        The claim's time is read here, after the state was read and just before it is
        written, not before the update: on S3 the GET (and any lost race) takes a while, and
        a start stamped early would leave the window early.
        """
        now = self.shared.clock()
        state = _load(current)
        leases: dict[str, Any] = state["leases"]
        stale = [k for k, v in leases.items() if float(v.get("expires", 0)) < now]
        taken_over = [str(leases.pop(k).get("owner")) for k in stale]
        starts = [s for s in state["starts"] if float(s[0]) > now - self.horizon]
        changed = bool(stale) or len(starts) != len(state["starts"])
        if back is not None:
            for s in starts:
                if s[2] == back[0] and s[1] > back[1]:
                    s[1], changed = back[1], True
        limits = self.limits
        recent = sum(int(s[1]) for s in starts)
        count = 1 if lease is not None else self.block
        grant = _Grant(False, now, holders=[str(v.get("owner")) for v in leases.values()],
                       taken_over=taken_over, recent=recent)  # fmt: skip
        if limits.concurrent is not None and len(leases) >= limits.concurrent:
            grant.wait = 0.0  # a lease frees when its request ends: look again soon
        elif limits.per_minute is not None and recent >= limits.per_minute:
            grant.wait = _free_at(starts, recent - limits.per_minute + 1) + self.horizon - now
        else:
            if limits.per_minute is not None:
                count = min(count, limits.per_minute - recent)
                starts.append([now, count, claim])
            if lease is not None:
                leases[lease] = {"owner": self.owner, "expires": now + limits.lease_seconds}
            grant.ok, grant.count, changed = True, count, True
        if not changed:
            return None, grant
        body = {"seq": state["seq"] + 1, "leases": leases, "starts": starts}
        return json.dumps(body, separators=(",", ":")).encode(), grant

    # -- holding and releasing ------------------------------------------------------------------

    def _release(self, lease: str) -> None:
        with self._lock:
            self._held.discard(lease)

        def drop(current: bytes | None) -> tuple[bytes | None, None]:
            state = _load(current)
            if state["leases"].pop(lease, None) is None:
                return None, None
            state["seq"] += 1
            return json.dumps(state, separators=(",", ":")).encode(), None

        try:
            self.shared.store.update(self.shared.bucket, self.key, drop)
        except XoeltError as exc:  # the lease expires on its own
            if self.log is not None:
                self.log.warning("could not release a rate-limit lease", limit=self.name,
                                 error=exc.message)  # fmt: skip

    def _renew(self) -> None:
        """Extend this process's leases every third of ``lease_seconds`` while it holds any."""
        interval = self.limits.lease_seconds / 3
        while True:
            time.sleep(interval)
            with self._lock:
                held = set(self._held)
                if not held:
                    self._renewer = None
                    return
            extend = functools.partial(self._extend, now=self.shared.clock(), held=held)
            try:
                lost = self.shared.store.update(self.shared.bucket, self.key, extend)
            except XoeltError as exc:
                lost = set()
                if self.log is not None:
                    self.log.warning("could not renew rate-limit leases", limit=self.name,
                                     error=exc.message)  # fmt: skip
            with self._lock:
                lost &= self._held  # a lease released meanwhile is not lost
            if lost and self.log is not None:
                self.log.warning(
                    "rate-limit lease expired before renewal (taken over as stale)",
                    limit=self.name, leases=len(lost),
                )  # fmt: skip

    def _extend(
        self, current: bytes | None, *, now: float, held: set[str]
    ) -> tuple[bytes | None, set[str]]:
        """Renew the ``held`` leases still in the state; the result is those gone from it."""
        state = _load(current)
        mine = {k: v for k, v in state["leases"].items() if k in held}
        for entry in mine.values():
            entry["expires"] = now + self.limits.lease_seconds
        state["seq"] += 1
        body = json.dumps(state, separators=(",", ":")).encode()
        return (body if mine else None), held - set(mine)


def _load(current: bytes | None) -> dict[str, Any]:
    """The state object; an unreadable one is started afresh (it only ever delays requests)."""
    try:
        state = json.loads(current) if current else {}
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    leases = state.get("leases")
    starts = state.get("starts")
    return {
        "seq": int(state.get("seq", 0)),
        "leases": leases if isinstance(leases, dict) else {},
        "starts": [s for s in starts if isinstance(s, list) and len(s) == 3]
        if isinstance(starts, list)
        else [],
    }


def _free_at(starts: list[list[Any]], count: int) -> float:
    """The claim time by which the oldest ``count`` starts have been claimed."""
    total = 0
    for when, n, _ in sorted(starts, key=lambda s: float(s[0])):
        total += int(n)
        if total >= count:
            return float(when)
    return float(starts[-1][0]) if starts else 0.0
