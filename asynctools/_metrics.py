"""Per-origin request metrics, fed by aiohttp's own client tracing (``aiohttp.TraceConfig``).

One ``TraceConfig`` (``metrics_trace_config``) serves every session; for each request it asks a
``lookup`` for the ``SiteMetrics`` of the request's origin once, keeps it in the per-request context
object aiohttp hands to every signal, and counts into it. Reading (``SiteMetrics.snapshot()``) walks
fixed-size counters and never touches the request path.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiohttp import (
    ClientResponseError,
    ClientSession,
    HttpVersion,
    TraceConfig,
    TraceConnectionCreateEndParams,
    TraceConnectionQueuedEndParams,
    TraceConnectionQueuedStartParams,
    TraceConnectionReuseconnParams,
    TraceDnsCacheHitParams,
    TraceDnsResolveHostEndParams,
    TraceRequestEndParams,
    TraceRequestExceptionParams,
    TraceRequestRedirectParams,
    TraceRequestStartParams,
)
from aiohttp.connector import Connection
from yarl import URL

from ._keys import Origin, origin_of, origin_text

__all__ = (
    "LATENCY_BOUNDS",
    "ConnectionTracker",
    "MetricsObserver",
    "SiteMetrics",
    "SiteMetricsBook",
    "SiteMetricsSnapshot",
    "metrics_trace_config",
)

# perf_counter: monotonic and the finest clock; bound once, as the callbacks run on every request.
_now: Final = time.perf_counter

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# The latency histogram: 4 buckets per doubling (each ~19% wide) from 50 µs to ~1,100 s, then one
# overflow bucket. Constant memory whatever the traffic, and a quantile is known to within one bucket.
_MIN_LATENCY: Final = 50e-6
_STEPS_PER_DOUBLING: Final = 4
_BUCKETS: Final = 98
#: Upper bound (seconds, inclusive) of each latency bucket; a last, overflow bucket holds what is longer.
LATENCY_BOUNDS: Final[tuple[float, ...]] = tuple(
    _MIN_LATENCY * 2.0 ** (i / _STEPS_PER_DOUBLING) for i in range(_BUCKETS)
)

_STATUS_CLASSES: Final = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


class MetricsObserver(Protocol):
    """What ``SiteMetricsBook.add_observer`` takes: told of each finished request and each closed
    connection (to feed OpenTelemetry).

    Called on the request path, only while registered: keep it short, and never raise.
    """

    def request_done(
        self,
        site: SiteMetrics,
        method: str,
        status: int | None,
        error: str | None,
        seconds: float,
        version: HttpVersion | None,
    ) -> None:
        """A request on *site* ended with a response (*status*, in HTTP *version*) or an exception
        (*error*, its type name; *version* ``None``)."""

    def connection_closed(self, site: SiteMetrics, seconds: float) -> None:
        """A connection to *site* (seen by a ``ConnectionTracker``) closed, *seconds* after it opened."""


@dataclass(frozen=True)
class SiteMetricsSnapshot:
    """The counters of one origin at one moment, as ``SiteMetrics.snapshot()`` returns them.

    ``origin``: ``scheme://host[:port]`` (the port shown unless it is the scheme's default, as in
    ``SessionStats.origin``). ``requests``: requests started; ``in_flight``: started and not yet
    ended (an end is the response headers or an exception). ``responses``: responses by status class
    (``"1xx"`` .. ``"5xx"``, ``"other"``), redirect hops included. ``errors``: requests ended by an exception,
    by the exception's type name (cancellations apart, in ``cancelled``). ``connections_opened`` /
    ``connections_reused``: connections the requests got new / from the keep-alive pool. ``queued`` and
    ``queue_wait``: times a request waited for a free connection (connector limits) and the seconds spent
    waiting. ``dns_resolutions`` / ``dns_cache_hits``: host names resolved / found in the connector's DNS
    cache. ``latency_count``, ``latency_sum``: requests timed (start to response headers, redirects
    included) and their total seconds; ``latency_p50`` / ``latency_p99``: the upper bound, in seconds, of
    the histogram bucket holding that quantile (the true value lies within ~19% below it), ``None`` before
    any. ``sessions_open``, ``sessions_idle``, ``acquisitions``: what the registry reported for this origin.
    ``connections_active`` / ``connections_idle``: connections open now, serving a request / kept alive
    in the pool; ``connections_closed`` and ``connection_time``: connections closed so far and the seconds
    they were open, all told (these four count only connections on a registry's shared connector, see
    ``ConnectionTracker``).
    """

    origin: str
    requests: int
    in_flight: int
    responses: Mapping[str, int]
    errors: Mapping[str, int]
    cancelled: int
    connections_opened: int
    connections_reused: int
    queued: int
    queue_wait: float
    dns_resolutions: int
    dns_cache_hits: int
    latency_count: int
    latency_sum: float
    latency_p50: float | None
    latency_p99: float | None
    sessions_open: int
    sessions_idle: int
    acquisitions: int
    # Defaults: added after the first release, so that positional construction keeps working.
    connections_active: int = 0
    connections_idle: int = 0
    connections_closed: int = 0
    connection_time: float = 0.0


class SiteMetrics:
    """The live counters of one origin (scheme, host, port), written by ``metrics_trace_config``'s callbacks.

    Plain attributes, read at any time from any thread (each read is whole, a set of reads is not atomic).
    Written by the event loop that runs the requests: counts stay exact as long as one loop writes at a time.
    The registry reports its own state here with ``count_acquisition()`` and ``set_sessions()``.
    """

    __slots__ = (
        "_latency",
        "_observers",
        "acquisitions",
        "cancelled",
        "connection_time",
        "connections_active",
        "connections_closed",
        "connections_idle",
        "connections_opened",
        "connections_reused",
        "dns_cache_hits",
        "dns_resolutions",
        "errors",
        "host",
        "in_flight",
        "latency_sum",
        "origin",
        "port",
        "queue_wait",
        "queued",
        "requests",
        "responses",
        "scheme",
        "sessions_idle",
        "sessions_open",
    )

    def __init__(self, origin: Origin, observers: list[MetricsObserver] | None = None) -> None:
        self.origin = origin
        self.scheme, self.host, self.port = origin
        self.requests = 0
        self.in_flight = 0
        self.responses = [0] * len(_STATUS_CLASSES)  # indexed by status // 100, 0 for anything else
        self.errors: dict[str, int] = {}
        self.cancelled = 0
        self.connections_opened = 0
        self.connections_reused = 0
        self.queued = 0
        self.queue_wait = 0.0
        self.dns_resolutions = 0
        self.dns_cache_hits = 0
        # Bucket index -> count, only the buckets used: a site's durations fall in a few of the 99, and
        # a crawler keeps thousands of sites (a full list would be most of a site's memory).
        self._latency: dict[int, int] = {}
        self.latency_sum = 0.0
        self.sessions_open = 0
        self.sessions_idle = 0
        self.acquisitions = 0
        self.connections_active = 0
        self.connections_idle = 0
        self.connections_closed = 0
        self.connection_time = 0.0
        # Shared with the book, so an observer added later reaches every site; empty costs one truth test.
        self._observers: list[MetricsObserver] = [] if observers is None else observers

    def __repr__(self) -> str:
        return f"<SiteMetrics {self.origin_text()} requests={self.requests} in_flight={self.in_flight}>"

    def origin_text(self) -> str:
        """The origin as ``scheme://host[:port]``, spelt as sessions and site policies spell it."""
        return origin_text(self.origin)

    def count_acquisition(self) -> None:
        """Count one session handed out by the registry for this origin."""
        self.acquisitions += 1

    def set_sessions(self, *, open: int, idle: int) -> None:
        """Record how many sessions the registry holds open for this origin, and how many of those are idle.

        Raises ``ValueError`` for a negative count or more idle sessions than open ones.
        """
        if not 0 <= idle <= open:
            raise ValueError(f"set_sessions() needs 0 <= idle <= open, got open={open!r}, idle={idle!r}")
        self.sessions_open = open
        self.sessions_idle = idle

    def latency_quantile(self, q: float) -> float | None:
        """The upper bound (seconds) of the bucket holding quantile *q* of the durations, ``None`` if none.

        ``math.inf`` when it lies in the overflow bucket. Raises ``ValueError`` unless ``0 <= q <= 1``.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
        counts = sorted(self._latency.items())  # one copy, so that a concurrent write cannot skew the walk
        total = sum(count for _, count in counts)
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))  # the rank-th smallest duration, 1-based
        seen = 0
        for index, count in counts:
            seen += count
            if seen >= rank:
                return LATENCY_BOUNDS[index] if index < _BUCKETS else math.inf
        return math.inf  # unreachable: seen ends at total >= rank

    def snapshot(self) -> SiteMetricsSnapshot:
        """A frozen copy of the counters (see ``SiteMetricsSnapshot``)."""
        responses = list(self.responses)
        return SiteMetricsSnapshot(
            origin=self.origin_text(),
            requests=self.requests,
            in_flight=self.in_flight,
            responses=dict(zip(_STATUS_CLASSES, responses, strict=True)),  # copies: asdict() works
            errors=dict(self.errors),
            cancelled=self.cancelled,
            connections_opened=self.connections_opened,
            connections_reused=self.connections_reused,
            queued=self.queued,
            queue_wait=self.queue_wait,
            dns_resolutions=self.dns_resolutions,
            dns_cache_hits=self.dns_cache_hits,
            latency_count=sum(self._latency.values()),
            latency_sum=self.latency_sum,
            latency_p50=self.latency_quantile(0.5),
            latency_p99=self.latency_quantile(0.99),
            sessions_open=self.sessions_open,
            sessions_idle=self.sessions_idle,
            acquisitions=self.acquisitions,
            connections_active=self.connections_active,
            connections_idle=self.connections_idle,
            connections_closed=self.connections_closed,
            connection_time=self.connection_time,
        )


class SiteMetricsBook:
    """The ``SiteMetrics`` of every origin one owner (a registry) has seen, made on first use.

    ``lookup`` is what ``metrics_trace_config`` takes. Memory stays bounded (a session built without a
    URL may be sent anywhere): a new origin beyond *max_sites* makes room by dropping the figures of the
    sites seen first that have nothing in flight, open or held (an eighth of *max_sites* at a time);
    when every site is busy, its requests are not counted but in ``untracked`` (and so are new
    connections to it, seen by a ``ConnectionTracker``). About 800 bytes a site.

    Raises ``ValueError`` for *max_sites* below 1.
    """

    def __init__(self, *, max_sites: int = 1024) -> None:
        if max_sites < 1:
            raise ValueError(f"max_sites must be at least 1, got {max_sites!r}")
        self.max_sites = max_sites
        self.untracked = 0
        self._sites: dict[Origin, SiteMetrics] = {}
        # The request path asks by the URL's own (scheme, raw host, port): no normalising on a hit.
        self._by_url: dict[tuple[str, str | None, int | None], SiteMetrics] = {}
        self._observers: list[MetricsObserver] = []
        # Where the sessions open per origin are counted live (set by the registry owning the book):
        # None for a book of its own, whose sessions are what set_sessions() last said.
        self._count_sessions: Callable[[], Mapping[Origin, tuple[int, int]]] | None = None

    def count_sessions_with(self, count: Callable[[], Mapping[Origin, tuple[int, int]]]) -> None:
        """Have ``sessions()`` ask *count* (open and idle sessions per origin, from any thread)."""
        self._count_sessions = count

    def sessions(self, site: SiteMetrics) -> tuple[int, int]:
        """The sessions open for *site*, and how many of them idle: live when the owner counts them."""
        if self._count_sessions is None:
            return site.sessions_open, site.sessions_idle
        return self._count_sessions().get(site.origin, (0, 0))

    def __repr__(self) -> str:
        return f"<SiteMetricsBook sites={len(self._sites)} untracked={self.untracked}>"

    def site(self, origin: Origin) -> SiteMetrics:
        """The ``SiteMetrics`` of *origin* (a ``parse_origin`` tuple), made if new, even past *max_sites*."""
        found = self._sites.get(origin)
        if found is None:
            # setdefault: two threads making the same site at once end up sharing one.
            found = self._sites.setdefault(origin, SiteMetrics(origin, self._observers))
        return found

    def lookup(self, url: URL) -> SiteMetrics | None:
        """The ``SiteMetrics`` for a request to *url*, or ``None`` for a URL not counted. Never raises."""
        found = self._by_url.get((url.scheme, url.raw_host, url.port))
        if found is not None:
            return found
        host, port = url.raw_host, url.port
        if host is None or port is None or url.scheme.lower() not in _DEFAULT_PORTS:
            return None
        origin = origin_of(url.scheme, host, port)
        found = self._sites.get(origin)
        if found is None:
            if len(self._sites) >= self.max_sites and not self._forget(max(1, self.max_sites // 8)):
                self.untracked += 1
                return None
            found = self.site(origin)
        if len(self._by_url) < 4 * self.max_sites:  # spellings of a host (case) are bounded too
            self._by_url[(url.scheme, url.raw_host, url.port)] = found
        return found

    def _forget(self, most: int) -> int:
        """Drop the figures of up to *most* sites with nothing in flight, open or held, those seen first
        first (a full book makes room so; ``max_sites // 8`` at a time, so the scan is rare)."""
        live = self._count_sessions() if self._count_sessions is not None else {}
        # list(): one C-level copy, so that another loop's thread adding a site cannot break the walk.
        idle = [
            origin
            for origin, site in list(self._sites.items())
            if not (site.in_flight or site.connections_active or site.connections_idle or origin in live)
        ][:most]
        if idle:
            for origin in idle:
                self._sites.pop(origin, None)
            remaining = set(self._sites.values())
            self._by_url = {k: s for k, s in list(self._by_url.items()) if s in remaining}
        return len(idle)

    def sites(self) -> tuple[SiteMetrics, ...]:
        """Every ``SiteMetrics`` made so far (and not forgotten since)."""
        return tuple(self._sites.values())

    def snapshot(self) -> tuple[SiteMetricsSnapshot, ...]:
        """A ``SiteMetricsSnapshot`` of every site, in the order they were first seen."""
        return tuple(site.snapshot() for site in self.sites())

    def add_observer(self, observer: MetricsObserver) -> None:
        """Tell *observer* of every request that ends from now on, on every site, current or future."""
        self._observers.append(observer)

    def remove_observer(self, observer: MetricsObserver) -> None:
        """Stop telling *observer*. Raises ``ValueError`` if it was not added."""
        try:
            self._observers.remove(observer)
        except ValueError:
            raise ValueError(
                f"{observer!r} is not an observer of this book; add_observer() it first"
            ) from None


class _RequestContext:
    """The per-request object aiohttp passes to every signal of our ``TraceConfig`` (its trace_config_ctx).

    Slots instead of aiohttp's default ``SimpleNamespace``: cheaper to make, and each signal reads the
    site found at the start instead of looking it up again (connection and DNS signals carry no URL).
    """

    __slots__ = ("queued_at", "site", "start", "trace_request_ctx")

    def __init__(self, trace_request_ctx: Any = None) -> None:
        self.trace_request_ctx = trace_request_ctx
        self.site: SiteMetrics | None = None
        self.start = 0.0
        self.queued_at = 0.0


def _finish(
    ctx: _RequestContext,
    site: SiteMetrics,
    method: str,
    status: int | None,
    error: str | None,
    version: HttpVersion | None = None,
) -> None:
    elapsed = _now() - ctx.start
    ctx.site = None  # a later exception signal for this request (another TraceConfig failed) is ignored
    site.in_flight -= 1
    if status is not None:
        site.responses[status // 100 if 100 <= status <= 599 else 0] += 1
        # The bucket whose inclusive upper bound is the first >= elapsed: bisecting the bounds (C code, ~7
        # comparisons) costs a third of computing a logarithm and rounding it.
        latency, index = site._latency, bisect_left(LATENCY_BOUNDS, elapsed)
        latency[index] = latency.get(index, 0) + 1
        site.latency_sum += elapsed
    if site._observers:
        for observer in site._observers:
            observer.request_done(site, method, status, error, elapsed, version)


def metrics_trace_config(lookup: Callable[[URL], SiteMetrics | None]) -> TraceConfig:
    """Return a ``TraceConfig`` that counts each request into the ``SiteMetrics`` *lookup* gives for its URL.

    *lookup* is called once per request, with the URL the request starts at; ``None`` leaves the request
    uncounted. A request is counted under its starting origin, redirects included. *lookup* must not
    raise: what it raises fails the request. One config may serve any number of sessions and loops.
    Raises ``TypeError`` if *lookup* is not callable.

    ``SiteMetricsBook.lookup`` is the usual *lookup*::

        book = SiteMetricsBook()
        async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
            ...
    """
    if not callable(lookup):
        raise TypeError(
            f"lookup must be a callable taking a yarl.URL, not {type(lookup).__name__}: {lookup!r}"
        )

    async def on_request_start(
        _: ClientSession, ctx: _RequestContext, params: TraceRequestStartParams
    ) -> None:
        site = lookup(params.url)
        if site is not None:
            ctx.start = _now()
            ctx.site = site
            site.requests += 1
            site.in_flight += 1

    async def on_request_end(_: ClientSession, ctx: _RequestContext, params: TraceRequestEndParams) -> None:
        site = ctx.site
        if site is not None:
            response = params.response
            _finish(ctx, site, params.method, response.status, None, response.version)

    async def on_request_exception(
        _: ClientSession, ctx: _RequestContext, params: TraceRequestExceptionParams
    ) -> None:
        site = ctx.site
        if site is None:
            return
        exc = params.exception
        name = type(exc).__name__
        # raise_for_status's error is an answer, not a failure to get one: it counts in its status class
        # and latency only, as the same answer without raise_for_status does (error.type is its status).
        if type(exc) is ClientResponseError and exc.status >= 100:
            _finish(ctx, site, params.method, exc.status, None)
            return
        status = None
        if isinstance(exc, Exception):
            site.errors[name] = site.errors.get(name, 0) + 1
        else:  # CancelledError (the caller gave up), KeyboardInterrupt: not the site's failure
            site.cancelled += 1
        _finish(ctx, site, params.method, status, name)

    async def on_request_redirect(
        _: ClientSession, ctx: _RequestContext, params: TraceRequestRedirectParams
    ) -> None:
        site = ctx.site
        if site is not None:
            status = params.response.status
            site.responses[status // 100 if 100 <= status <= 599 else 0] += 1

    async def on_queued_start(
        _: ClientSession, ctx: _RequestContext, __: TraceConnectionQueuedStartParams
    ) -> None:
        if ctx.site is not None:
            ctx.queued_at = _now()

    async def on_queued_end(
        _: ClientSession, ctx: _RequestContext, __: TraceConnectionQueuedEndParams
    ) -> None:
        site = ctx.site
        if site is not None:
            site.queued += 1
            site.queue_wait += _now() - ctx.queued_at

    async def on_create_end(
        _: ClientSession, ctx: _RequestContext, __: TraceConnectionCreateEndParams
    ) -> None:
        site = ctx.site
        if site is not None:
            site.connections_opened += 1

    async def on_reuseconn(
        _: ClientSession, ctx: _RequestContext, __: TraceConnectionReuseconnParams
    ) -> None:
        site = ctx.site
        if site is not None:
            site.connections_reused += 1

    async def on_resolvehost_end(
        _: ClientSession, ctx: _RequestContext, __: TraceDnsResolveHostEndParams
    ) -> None:
        site = ctx.site
        if site is not None:
            site.dns_resolutions += 1

    async def on_dns_cache_hit(_: ClientSession, ctx: _RequestContext, __: TraceDnsCacheHitParams) -> None:
        site = ctx.site
        if site is not None:
            site.dns_cache_hits += 1

    # aiohttp types the context as SimpleNamespace; ours is a slotted class made by the factory below.
    config = TraceConfig(trace_config_ctx_factory=_context_factory())
    for signal, callback in (
        (config.on_request_start, on_request_start),
        (config.on_request_end, on_request_end),
        (config.on_request_exception, on_request_exception),
        (config.on_request_redirect, on_request_redirect),
        (config.on_connection_queued_start, on_queued_start),
        (config.on_connection_queued_end, on_queued_end),
        (config.on_connection_create_end, on_create_end),
        (config.on_connection_reuseconn, on_reuseconn),
        (config.on_dns_resolvehost_end, on_resolvehost_end),
        (config.on_dns_cache_hit, on_dns_cache_hit),
    ):
        signal.append(callback)  # type: ignore[arg-type]
    return config


def _context_factory() -> Any:
    return _RequestContext


class _Tracked:
    """One open connection a ``ConnectionTracker`` has seen: its site, when it opened, whether in use."""

    __slots__ = ("active", "on_release", "opened", "protocol", "site", "tracker")

    def __init__(self, tracker: ConnectionTracker, protocol: Any, site: SiteMetrics | None) -> None:
        self.tracker = tracker
        self.protocol = protocol
        self.site = site
        self.opened = _now()
        self.active = True
        # Bound once: every request on this connection hands it to aiohttp's Connection.add_callback.
        self.on_release = self.released

    def released(self) -> None:
        # aiohttp calls this before it puts the connection back in its pool, or closes it.
        if not self.active:
            return
        self.active = False
        site = self.site
        if site is not None:
            site.connections_active -= 1
            site.connections_idle += 1

    def lost(self, closed: asyncio.Future[Any]) -> None:
        if not closed.cancelled():
            closed.exception()  # lost with an error: retrieved, or asyncio logs it as never retrieved
        self.tracker.closed(self)


class ConnectionTracker:
    """Counts the connections of one connector per site: open (active or idle), closed, how long each lived.

    aiohttp's tracing signals a connection opened or reused, never released or closed, so the connector
    reports to the tracker instead: ``acquired()`` for every connection it hands out, ``close_all()`` when
    it closes. A protocol not seen before is a new connection; ``Connection.add_callback`` says when the
    request lets go of it; the protocol's ``closed`` future (aiohttp >= 3.12.4) says when it is gone,
    whoever hung up.

    Only the loop that runs the connector calls it. *lookup* is the site lookup of
    ``metrics_trace_config``: called once per new connection, with the URL of the request that opened it.
    """

    def __init__(self, lookup: Callable[[URL], SiteMetrics | None]) -> None:
        self._lookup = lookup
        # Protocol -> what we know of it; untracked sites too (site None), so that each is looked up once.
        self._open: dict[Any, _Tracked] = {}

    def __repr__(self) -> str:
        return f"<ConnectionTracker open={len(self._open)}>"

    def acquired(self, connection: Connection, url: URL) -> None:
        """*connection* was handed out for a request to *url*: count it active (and new, if it is)."""
        protocol = connection.protocol
        if protocol is None:
            return
        tracked = self._open.get(protocol)
        if tracked is None:
            tracked = self._opened(protocol, url)
        elif not tracked.active:  # from the keep-alive pool
            tracked.active = True
            site = tracked.site
            if site is not None:
                site.connections_idle -= 1
                site.connections_active += 1
        connection.add_callback(tracked.on_release)

    def _opened(self, protocol: Any, url: URL) -> _Tracked:
        site = self._lookup(url)
        tracked = self._open[protocol] = _Tracked(self, protocol, site)
        if site is not None:
            site.connections_active += 1
        # Set when connection_lost() runs, whoever hung up (made lazily by later releases: None once lost).
        closed = protocol.closed
        if closed is None:
            self.closed(tracked)
        else:
            closed.add_done_callback(tracked.lost)
        return tracked

    def closed(self, tracked: _Tracked) -> None:
        """*tracked* is gone: count it closed, with how long it was open. Does nothing the second time."""
        if self._open.pop(tracked.protocol, None) is None:
            return
        site, active = tracked.site, tracked.active
        # A request still holding it releases it later: that must count nothing more.
        tracked.site, tracked.active = None, False
        if site is None:
            return
        seconds = _now() - tracked.opened
        if active:
            site.connections_active -= 1
        else:
            site.connections_idle -= 1
        site.connections_closed += 1
        site.connection_time += seconds
        if site._observers:
            for observer in site._observers:
                observer.connection_closed(site, seconds)

    def close_all(self) -> None:
        """The connector closed: every connection still counted open is closed now."""
        for tracked in list(self._open.values()):
            self.closed(tracked)
