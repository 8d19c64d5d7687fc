"""OpenTelemetry instruments read through the SDK's in-memory reader, fed by real requests on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from asynctools import SessionRegistry, otel
from asynctools._metrics import SiteMetricsBook, metrics_trace_config

# What an attribute may name: the site, the method, the outcome. Nothing that a URL path, a query or a
# header could put there.
ALLOWED_ATTRIBUTES = {
    "server.address",
    "server.port",
    "url.scheme",
    "http.request.method",
    "http.response.status_code",
    "error.type",
    "network.protocol.version",
    "asynctools.session.state",
    "asynctools.dns.cache",
    "http.connection.state",
}


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="x")

    app = web.Application()
    app.router.add_route("*", "/secret-user-42/status/{code}", status)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


class Meters:
    """An SDK meter provider whose only reader keeps what it collects in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])


@pytest.fixture
def meters() -> Iterator[Meters]:
    meters = Meters()
    yield meters
    meters.provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point collected, by metric name."""
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing was observed at all
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "asynctools" and scope.scope.schema_url == otel.SCHEMA_URL
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_request_duration_histogram(server: TestServer, meters: Meters) -> None:
    book = SiteMetricsBook()
    instrumentation = otel.instrument(book, meters.provider)
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        for code in (200, 200, 404):
            await (await session.get(server.make_url(f"/secret-user-42/status/{code}?token=abc"))).read()
        await (await session.request("BREW", server.make_url("/secret-user-42/status/200"))).read()
    found = points(meters.reader)
    instrumentation.uninstrument()
    base = {"server.address": "127.0.0.1", "server.port": server.port, "url.scheme": "http"}
    durations = {tuple(sorted(p.attributes.items())): p for p in found["http.client.request.duration"]}
    ok = tuple(
        sorted(
            {
                **base,
                "http.request.method": "GET",
                "http.response.status_code": 200,
                "network.protocol.version": "1.1",
            }.items()
        )
    )
    missing = tuple(
        sorted(
            {
                **base,
                "http.request.method": "GET",
                "http.response.status_code": 404,
                "error.type": "404",
                "network.protocol.version": "1.1",
            }.items()
        )
    )
    # aiohttp's server refuses a method it does not know: 400 (in HTTP/1.0), under the method "_OTHER".
    other = tuple(
        sorted(
            {
                **base,
                "http.request.method": "_OTHER",
                "http.response.status_code": 400,
                "error.type": "400",
                "network.protocol.version": "1.0",
            }.items()
        )
    )
    assert set(durations) == {ok, missing, other}
    assert durations[ok].count == 2 and durations[missing].count == 1 and durations[other].count == 1
    assert durations[ok].sum > 0
    assert list(durations[ok].explicit_bounds)[:3] == [0.005, 0.01, 0.025]  # the conventions' buckets


async def test_errors_and_pool_figures_and_no_path_anywhere(server: TestServer, meters: Meters) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = sock.getsockname()[1]
    book = SiteMetricsBook()
    instrumentation = otel.instrument(book, meters.provider)
    assert server.port is not None  # started by the fixture
    site = book.site(("http", "127.0.0.1", server.port))
    site.count_acquisition()
    site.set_sessions(open=3, idle=1)
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        for _ in range(3):
            await (await session.get(server.make_url("/secret-user-42/status/200"))).read()
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://127.0.0.1:{refused}/secret-user-42/")
    found = points(meters.reader)
    instrumentation.uninstrument()

    for name, data_points in found.items():
        for point in data_points:
            assert set(point.attributes) <= ALLOWED_ATTRIBUTES, (name, point.attributes)
            assert not any("secret" in str(v) for v in point.attributes.values()), (name, point.attributes)

    def value(name: str, port: int, **extra: str) -> float:
        (match,) = [
            p.value
            for p in found[name]
            if p.attributes["server.port"] == port and all(p.attributes.get(k) == v for k, v in extra.items())
        ]
        return float(match)

    failed = [p for p in found["http.client.request.duration"] if p.attributes["server.port"] == refused]
    assert [(p.count, p.attributes.get("error.type")) for p in failed] == [(1, "ClientConnectorError")]
    assert "http.response.status_code" not in failed[0].attributes
    port = server.port
    assert value("http.client.active_requests", port) == 0
    assert value("asynctools.client.connections.opened", port) == 1
    assert value("asynctools.client.connections.reused", port) == 2
    assert value("asynctools.client.session.acquisitions", port) == 1
    assert value("asynctools.client.sessions", port, **{"asynctools.session.state": "active"}) == 2
    assert value("asynctools.client.sessions", port, **{"asynctools.session.state": "idle"}) == 1
    assert value("asynctools.client.connection.queued", port) == 0
    assert value("asynctools.client.connection.queue_time", port) == 0
    assert value("asynctools.client.dns.lookups", port, **{"asynctools.dns.cache": "miss"}) == 0


class HeldServer:
    """A loopback server whose every GET is answered only once ``gate`` is set; ``arrived`` is set as a
    request reaches it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()
        self.server = TestServer(web.Application(), host="127.0.0.1")

    async def held(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self.gate.wait()
        return web.Response(text="done")


@pytest.fixture
async def held_server() -> AsyncIterator[HeldServer]:
    held = HeldServer()
    held.server.app.router.add_get("/{tail:.*}", held.held)
    await held.server.start_server()
    try:
        yield held
    finally:
        held.gate.set()
        await held.server.close()


async def test_active_requests_while_waiting(held_server: HeldServer, meters: Meters) -> None:
    srv = held_server.server
    book = SiteMetricsBook()
    instrumentation = otel.instrument(book, meters.provider)
    try:
        async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
            task = asyncio.create_task(session.get(srv.make_url("/")))
            await held_server.arrived.wait()
            (active,) = points(meters.reader)["http.client.active_requests"]
            assert active.value == 1
            held_server.gate.set()
            await (await task).read()
        (active,) = points(meters.reader)["http.client.active_requests"]
        assert active.value == 0
    finally:
        instrumentation.uninstrument()


async def test_uninstrument_stops_reporting(server: TestServer, meters: Meters) -> None:
    book = SiteMetricsBook()
    instrumentation = otel.instrument(book, meters.provider)
    instrumentation.uninstrument()
    instrumentation.uninstrument()  # idempotent
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        await (await session.get(server.make_url("/secret-user-42/status/200"))).read()
    found = points(meters.reader)
    assert all(not data_points for data_points in found.values()), found
    assert book.sites()[0].requests == 1  # the metrics themselves go on


def test_instrument_takes_a_registry_with_metrics_or_a_book(meters: Meters) -> None:
    class RegistryLike:
        metrics = SiteMetricsBook()

    instrumentation = otel.instrument(RegistryLike(), meters.provider)
    assert instrumentation._book is RegistryLike.metrics
    instrumentation.uninstrument()
    with pytest.raises(TypeError, match="SessionRegistry or a SiteMetricsBook"):
        otel.instrument(object(), meters.provider)


async def test_open_connections_and_connection_duration_from_the_registrys_connector(
    held_server: HeldServer, meters: Meters
) -> None:
    srv = held_server.server
    registry = SessionRegistry(metrics=True)
    instrumentation = otel.instrument(registry, meters.provider)
    base = {"server.address": "127.0.0.1", "server.port": srv.port, "url.scheme": "http"}

    def open_connections() -> dict[str, int]:
        found = points(meters.reader)
        states = {}
        for point in found.get("http.client.open_connections", []):
            assert {k: v for k, v in point.attributes.items() if k != "http.connection.state"} == base
            states[point.attributes["http.connection.state"]] = point.value
        return states

    try:
        async with registry.session(srv.make_url("/")) as session:
            task = asyncio.create_task(session.get(srv.make_url("/secret-user-42/")))
            await held_server.arrived.wait()
            assert open_connections() == {"active": 1, "idle": 0}
            held_server.gate.set()
            await (await task).read()
            assert open_connections() == {"active": 0, "idle": 1}
            assert "http.client.connection.duration" not in points(meters.reader)  # still open
        await registry.close()
        for _ in range(1000):  # the connector's close ends the connection as connection_lost() runs
            if registry.metrics is not None and registry.metrics.sites()[0].connections_closed:
                break
            await asyncio.sleep(0.001)
        found = points(meters.reader)
        (duration,) = found["http.client.connection.duration"]
        assert dict(duration.attributes) == base
        assert duration.count == 1 and 0 < duration.sum < 60
        assert list(duration.explicit_bounds)[:2] == [0.01, 0.02]
        assert open_connections() == {"active": 0, "idle": 0}
    finally:
        held_server.gate.set()
        instrumentation.uninstrument()
        await registry.close()


async def test_the_session_gauges_are_live_without_stats(server: TestServer, meters: Meters) -> None:
    registry = SessionRegistry(metrics=True)
    instrumentation = otel.instrument(registry, meters.provider)
    assert server.port is not None  # started by the fixture
    url = str(server.make_url("/"))

    def sessions() -> tuple[float, float]:
        found = {
            p.attributes["asynctools.session.state"]: p.value
            for p in points(meters.reader).get("asynctools.client.sessions", [])
            if p.attributes["server.port"] == server.port
        }
        return found.get("active", 0), found.get("idle", 0)

    async with registry.session(url):
        held = sessions()
    released = sessions()
    await registry.close()
    closed = sessions()
    assert (held, released, closed) == ((1, 0), (0, 1), (0, 0))  # never a stats() call in between
    instrumentation.uninstrument()


async def test_error_type_is_the_status_with_raise_for_status(server: TestServer, meters: Meters) -> None:
    registry = SessionRegistry(metrics=True)
    instrumentation = otel.instrument(registry, meters.provider)
    async with registry.session(str(server.make_url("/")), raise_for_status=True) as session:
        for code in (404, 503):
            with pytest.raises(aiohttp.ClientResponseError):
                await session.get(server.make_url(f"/secret-user-42/status/{code}"))
    durations = points(meters.reader)["http.client.request.duration"]
    assert sorted(
        (p.attributes["http.response.status_code"], p.attributes["error.type"]) for p in durations
    ) == [(404, "404"), (503, "503")]
    (site,) = registry.stats().metrics
    assert (site.responses["4xx"], site.responses["5xx"], dict(site.errors)) == (1, 1, {})
    instrumentation.uninstrument()
    await registry.close()
