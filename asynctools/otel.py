"""OpenTelemetry metrics for the sessions a registry builds (the ``asynctools[otel]`` extra).

``instrument(registry)`` publishes the per-origin counters of ``asynctools._metrics`` through the
OpenTelemetry metrics API, following the HTTP client semantic conventions where one exists
(``http.client.request.duration``, ``http.client.active_requests``, ``http.client.open_connections``,
``http.client.connection.duration``) and under ``asynctools.`` for the pool's own figures. Every
attribute names the site only (``server.address``, ``server.port``, ``url.scheme``) plus, on the request
histogram, the method, status code and error type, and on the open connections their state: never a
path, a query or a header, which could carry one user's data into another's dashboards.

Only the request-duration histogram is recorded on the request path, and the connection-duration one as
a connection closes (and only once ``instrument()`` has been called); everything else is read from the
counters when the reader collects. Without this module imported nothing OpenTelemetry-specific runs at
all. Connections are seen only on the registry's shared connector: sessions given a ``connector=`` of
their own report requests, not connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

try:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
except ImportError as exc:  # pragma: no cover - the extra is installed wherever the tests run
    raise ImportError(
        "asynctools.otel needs the OpenTelemetry API: pip install 'aiohttp-asynctools[otel]'"
    ) from exc

from aiohttp import HttpVersion

from ._metrics import SiteMetrics, SiteMetricsBook

__all__ = ("Instrumentation", "instrument")

#: The semantic conventions these instruments follow (their stable HTTP client metrics).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.26.0"

# The HTTP semantic conventions' advice for http.client.request.duration, in seconds.
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# Connections live from milliseconds (closed after one answer) to minutes (kept alive): 10 ms to 5 min.
_CONNECTION_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Methods the conventions name; any other is reported as _OTHER, so that a client sending made-up
# methods cannot grow the number of series without bound.
_KNOWN_METHODS: Final = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY")
)

_Attributes = dict[str, str | int]


def _site_attributes(site: SiteMetrics) -> _Attributes:
    return {"server.address": site.host, "server.port": site.port, "url.scheme": site.scheme}


class Instrumentation:
    """What ``instrument()`` returns: the instruments it made, and ``uninstrument()`` to stop reporting.

    The OpenTelemetry API cannot remove an instrument, so after ``uninstrument()`` the instruments stay
    registered with the meter and simply report nothing more.
    """

    def __init__(self, book: SiteMetricsBook, meter_provider: MeterProvider | None) -> None:
        from . import __version__  # here: the package imports its modules first

        self._book = book
        self._active = True
        # Site attributes are made once per site, not per request or per collection.
        self._attributes: dict[SiteMetrics, _Attributes] = {}
        meter = get_meter("asynctools", __version__, meter_provider, schema_url=SCHEMA_URL)
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests, from start to response headers.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            "http.client.active_requests",
            [self._observe(lambda s: [(s.in_flight, None)])],
            unit="{request}",
            description="Number of active HTTP requests.",
        )
        self.connection_duration = meter.create_histogram(
            "http.client.connection.duration",
            unit="s",
            description="The duration of the successfully established outbound HTTP connections.",
            explicit_bucket_boundaries_advisory=_CONNECTION_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            "http.client.open_connections",
            [
                self._observe(
                    lambda s: [
                        (s.connections_active, ("http.connection.state", "active")),
                        (s.connections_idle, ("http.connection.state", "idle")),
                    ]
                )
            ],
            unit="{connection}",
            description="Number of outbound HTTP connections that are currently active or idle on the "
            "client.",
        )
        meter.create_observable_up_down_counter(
            "asynctools.client.sessions",
            [self._observe(self._sessions)],
            unit="{session}",
            description="Sessions the registry holds open, by state (idle: kept warm with no user).",
        )
        meter.create_observable_counter(
            "asynctools.client.session.acquisitions",
            [self._observe(lambda s: [(s.acquisitions, None)])],
            unit="{acquisition}",
            description="Sessions handed out by the registry.",
        )
        meter.create_observable_counter(
            "asynctools.client.connection.queued",
            [self._observe(lambda s: [(s.queued, None)])],
            unit="{request}",
            description="Times a request waited for a free connection (connector limits).",
        )
        meter.create_observable_counter(
            "asynctools.client.connection.queue_time",
            [self._observe(lambda s: [(s.queue_wait, None)])],
            unit="s",
            description="Total time requests spent waiting for a free connection.",
        )
        meter.create_observable_counter(
            "asynctools.client.connections.opened",
            [self._observe(lambda s: [(s.connections_opened, None)])],
            unit="{connection}",
            description="Connections opened for requests.",
        )
        meter.create_observable_counter(
            "asynctools.client.connections.reused",
            [self._observe(lambda s: [(s.connections_reused, None)])],
            unit="{connection}",
            description="Requests served on a kept-alive connection.",
        )
        meter.create_observable_counter(
            "asynctools.client.dns.lookups",
            [
                self._observe(
                    lambda s: [
                        (s.dns_resolutions, ("asynctools.dns.cache", "miss")),
                        (s.dns_cache_hits, ("asynctools.dns.cache", "hit")),
                    ]
                )
            ],
            unit="{lookup}",
            description="Host name lookups, by whether the connector's DNS cache answered.",
        )
        book.add_observer(self)

    def __repr__(self) -> str:
        return f"<Instrumentation {'active' if self._active else 'stopped'} {self._book!r}>"

    def _sessions(self, site: SiteMetrics) -> list[tuple[float, tuple[str, str] | None]]:
        # Counted live by the registry as the reader collects (not what the last stats() call saw).
        open_, idle = self._book.sessions(site)
        return [
            (open_ - idle, ("asynctools.session.state", "active")),
            (idle, ("asynctools.session.state", "idle")),
        ]

    def _site(self, site: SiteMetrics) -> _Attributes:
        attributes = self._attributes.get(site)
        if attributes is None:
            attributes = self._attributes.setdefault(site, _site_attributes(site))
        return attributes

    def _observe(
        self, values: Callable[[SiteMetrics], list[tuple[float, tuple[str, str] | None]]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """An observable callback giving *values* for every site, each with the site's attributes."""

        def callback(_: CallbackOptions) -> Iterable[Observation]:
            if not self._active:
                return []
            observations = []
            sites = self._book.sites()
            if len(self._attributes) > len(sites):  # sites forgotten by the book: forget theirs
                self._attributes = {s: a for s, a in self._attributes.items() if s in set(sites)}
            for site in sites:
                base = self._site(site)
                for value, extra in values(site):
                    attributes = base if extra is None else {**base, extra[0]: extra[1]}
                    observations.append(Observation(value, attributes))
            return observations

        return callback

    def request_done(
        self,
        site: SiteMetrics,
        method: str,
        status: int | None,
        error: str | None,
        seconds: float,
        version: HttpVersion | None,
    ) -> None:
        """Record one request in ``http.client.request.duration`` (called by the metrics tracer)."""
        attributes: _Attributes = {
            **self._site(site),
            "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
        }
        if version is not None:  # "1.1", "1.0" (the conventions' spelling; "2" for HTTP/2)
            attributes["network.protocol.version"] = (
                f"{version.major}.{version.minor}" if version.major < 2 else str(version.major)
            )
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            attributes["error.type"] = error
        elif status is not None and status >= 400:
            # The conventions count 4xx and 5xx answers as client errors, typed by their status code.
            attributes["error.type"] = str(status)
        self.request_duration.record(seconds, attributes)

    def connection_closed(self, site: SiteMetrics, seconds: float) -> None:
        """Record one connection in ``http.client.connection.duration`` (called as it closes)."""
        self.connection_duration.record(seconds, self._site(site))

    def uninstrument(self) -> None:
        """Stop reporting: no more durations recorded, observable instruments report nothing. Idempotent."""
        if self._active:
            self._active = False
            self._book.remove_observer(self)


def instrument(source: object, meter_provider: MeterProvider | None = None) -> Instrumentation:
    """Publish the per-site metrics of *source* through OpenTelemetry; return the ``Instrumentation``.

    *source* is a ``SessionRegistry`` (its ``metrics``) or a ``SiteMetricsBook``. Instruments come from
    *meter_provider*, or from the global one (``opentelemetry.metrics.set_meter_provider``) when ``None``.
    Call it once per source: each call makes another set of observers. Raises ``TypeError`` if *source*
    has no metrics to publish. ::

        reader = InMemoryMetricReader()
        instrumentation = asynctools.otel.instrument(registry, MeterProvider(metric_readers=[reader]))
        ...
        instrumentation.uninstrument()
    """
    book = source if isinstance(source, SiteMetricsBook) else getattr(source, "metrics", None)
    if not isinstance(book, SiteMetricsBook):
        raise TypeError(
            f"instrument() takes a SessionRegistry or a SiteMetricsBook, not {type(source).__name__}: "
            f"{source!r}"
        )
    return Instrumentation(book, meter_provider)
