"""Per-origin metrics from aiohttp's tracing: plain ClientSessions with ``metrics_trace_config`` against
real loopback servers (aiohttp's TestServer, raw asyncio servers for faults)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import socket
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from asynctools._connector import ObservedConnector
from asynctools._metrics import (
    LATENCY_BOUNDS,
    ConnectionTracker,
    SiteMetrics,
    SiteMetricsBook,
    SiteMetricsSnapshot,
    metrics_trace_config,
)


class Site:
    """A loopback aiohttp server with /status/N, /redirect, /sleep and /gate routes."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = 0
        self.arrival = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/sleep", self.sleep)
        app.router.add_get("/gate", self.wait_gate)
        self.server = TestServer(app, host="127.0.0.1")

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="x")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/status/200")

    async def sleep(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["s"]))
        return web.Response(text="slept")

    async def wait_gate(self, request: web.Request) -> web.Response:
        async with self.arrival:
            self.entered += 1
            self.arrival.notify_all()
        await self.gate.wait()
        return web.Response(text="through")

    async def wait_entered(self, n: int) -> None:
        """Until *n* requests have reached /gate."""
        async with self.arrival:
            await self.arrival.wait_for(lambda: self.entered >= n)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    server = Site()
    await server.server.start_server()
    try:
        yield server
    finally:
        server.gate.set()
        await server.server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_site(book: SiteMetricsBook) -> SiteMetrics:
    sites = book.sites()
    assert len(sites) == 1, sites
    return sites[0]


async def test_requests_and_status_classes(site: Site) -> None:
    book = SiteMetricsBook()
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        for code in (200, 201, 204, 404, 500, 503):
            async with session.get(site.url(f"/status/{code}")) as resp:
                await resp.read()
                assert resp.status == code
    snap = one_site(book).snapshot()
    assert snap.origin == f"http://127.0.0.1:{site.server.port}"
    assert snap.requests == 6
    assert snap.in_flight == 0
    assert dict(snap.responses) == {"other": 0, "1xx": 0, "2xx": 3, "3xx": 0, "4xx": 1, "5xx": 2}
    assert dict(snap.errors) == {}
    assert snap.latency_count == 6
    assert snap.latency_sum > 0


async def test_redirect_counts_one_request_two_responses(site: Site) -> None:
    book = SiteMetricsBook()
    async with (
        aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session,
        session.get(site.url("/redirect")) as resp,
    ):
        assert resp.status == 200
    snap = one_site(book).snapshot()
    assert (snap.requests, snap.responses["3xx"], snap.responses["2xx"], snap.latency_count) == (1, 1, 1, 1)


async def test_in_flight_counts_requests_waiting_for_headers(site: Site) -> None:
    book = SiteMetricsBook()
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:

        async def fetch() -> None:
            async with session.get(site.url("/gate")) as resp:
                await resp.read()

        tasks = [asyncio.create_task(fetch()) for _ in range(3)]
        await site.wait_entered(3)
        assert one_site(book).in_flight == 3
        site.gate.set()
        await asyncio.gather(*tasks)
    assert one_site(book).in_flight == 0


async def test_errors_by_exception_type() -> None:
    """Connection refused, a server that hangs up without answering, and raise_for_status (an answer)."""
    refused = free_port()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    async def answer_500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    book = SiteMetricsBook()
    rude = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    failing = await asyncio.start_server(answer_500, "127.0.0.1", 0)
    rude_port = rude.sockets[0].getsockname()[1]
    failing_port = failing.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(f"http://127.0.0.1:{refused}/")
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.get(f"http://127.0.0.1:{rude_port}/")
            with pytest.raises(aiohttp.ClientResponseError):
                await session.get(f"http://127.0.0.1:{failing_port}/", raise_for_status=True)
    finally:
        rude.close()
        failing.close()
        await rude.wait_closed()
        await failing.wait_closed()
    by_port = {s.port: s.snapshot() for s in book.sites()}
    assert dict(by_port[refused].errors) == {"ClientConnectorError": 1}
    assert dict(by_port[rude_port].errors) == {"ServerDisconnectedError": 1}
    # The raise_for_status error is an answer: it counts as a 5xx and is timed, and is no error (the
    # same answer without raise_for_status counts the same).
    assert dict(by_port[failing_port].errors) == {}
    assert by_port[failing_port].responses["5xx"] == 1
    assert by_port[failing_port].latency_count == 1
    assert by_port[refused].latency_count == 0 and by_port[refused].connections_opened == 0
    assert all(s.in_flight == 0 and s.requests == 1 for s in by_port.values())


async def test_cancelled_request_is_not_an_error(site: Site) -> None:
    book = SiteMetricsBook()
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        task = asyncio.create_task(session.get(site.url("/gate")))
        await site.wait_entered(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    snap = one_site(book).snapshot()
    assert (snap.requests, snap.cancelled, snap.in_flight, dict(snap.errors)) == (1, 1, 0, {})


async def test_keep_alive_opens_one_connection_and_reuses_it(site: Site) -> None:
    book = SiteMetricsBook()
    n = 7
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        for _ in range(n):
            async with session.get(site.url("/status/200")) as resp:
                await resp.read()
    snap = one_site(book).snapshot()
    assert (snap.connections_opened, snap.connections_reused) == (1, n - 1)


async def test_queue_wait_with_a_connection_limit(site: Site) -> None:
    book = SiteMetricsBook()
    # A tracer of the test's own says when the two other requests wait in the connector's queue.
    queued = asyncio.Condition()
    waiting = 0
    spy = aiohttp.TraceConfig()

    async def on_queued(*_: Any) -> None:
        nonlocal waiting
        async with queued:
            waiting += 1
            queued.notify_all()

    spy.on_connection_queued_start.append(on_queued)
    configs = [spy, metrics_trace_config(book.lookup)]
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, trace_configs=configs) as s:

        async def fetch() -> None:
            async with s.get(site.url("/gate")) as resp:
                await resp.read()

        tasks = [asyncio.create_task(fetch()) for _ in range(3)]
        await site.wait_entered(1)
        async with queued:
            await queued.wait_for(lambda: waiting >= 2)
        site.gate.set()
        await asyncio.gather(*tasks)
    snap = one_site(book).snapshot()
    assert snap.queued >= 2
    assert snap.queue_wait > 0
    assert snap.connections_opened + snap.connections_reused == 3


async def test_no_queue_without_a_limit(site: Site) -> None:
    book = SiteMetricsBook()
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        await asyncio.gather(*(session.get(site.url("/status/200")) for _ in range(3)))
    snap = one_site(book).snapshot()
    assert (snap.queued, snap.queue_wait) == (0, 0.0)


async def test_dns_resolutions_and_cache_hits(site: Site) -> None:
    """With ``localhost`` the resolver runs once; later connections take the connector's DNS cache."""
    book = SiteMetricsBook()
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection, hence a host lookup, per request
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[metrics_trace_config(book.lookup)]
    ) as s:
        for _ in range(3):
            async with s.get(site.url("/status/200", host="localhost")) as resp:
                await resp.read()
    snap = one_site(book).snapshot()
    assert snap.origin == f"http://localhost:{site.server.port}"
    assert (snap.dns_resolutions, snap.dns_cache_hits, snap.connections_opened) == (1, 2, 3)


async def test_ip_addresses_need_no_dns(site: Site) -> None:
    book = SiteMetricsBook()
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        await (await session.get(site.url("/status/200"))).read()
    snap = one_site(book).snapshot()
    assert (snap.dns_resolutions, snap.dns_cache_hits) == (0, 0)


async def test_latency_percentiles_within_bucket_bounds(site: Site) -> None:
    book = SiteMetricsBook()
    delay = 0.02
    outer: list[float] = []
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        for _ in range(10):
            start = time.perf_counter()
            async with session.get(site.url(f"/sleep?s={delay}")) as resp:
                outer.append(time.perf_counter() - start)  # at the headers, as the metric is
                await resp.read()
    snap = one_site(book).snapshot()
    assert snap.latency_count == 10
    assert snap.latency_p50 is not None and snap.latency_p99 is not None
    ratio = 2 ** (1 / 4)
    # The reported value is the upper bound of the bucket holding the quantile: every duration measured
    # lies between the handler's sleep and what the caller saw around the request.
    for reported in (snap.latency_p50, snap.latency_p99):
        assert reported in LATENCY_BOUNDS
        assert reported >= delay
        assert reported / ratio < max(outer) * 1.0001
    assert snap.latency_p50 <= snap.latency_p99
    assert delay * 10 <= snap.latency_sum <= sum(outer)


def fill_histogram(metrics: SiteMetrics, counts: dict[int, int]) -> None:
    """Put *counts* (bucket index: how many durations) in the histogram, as finished requests would."""
    for index, count in counts.items():
        metrics._latency[index] = metrics._latency.get(index, 0) + count


def test_histogram_quantiles_unit() -> None:
    # The request path files a duration under the first bound >= it (end to end in the test above); the
    # quantiles are read here from a histogram filled by hand.
    metrics = SiteMetrics(("http", "a", 80))
    assert metrics.latency_quantile(0.5) is None
    fill_histogram(metrics, {10: 1, 20: 98, 30: 1})
    assert metrics.latency_quantile(0.0) == metrics.latency_quantile(0.01) == LATENCY_BOUNDS[10]
    assert metrics.latency_quantile(0.5) == metrics.latency_quantile(0.99) == LATENCY_BOUNDS[20]
    assert metrics.latency_quantile(1.0) == LATENCY_BOUNDS[30]
    fill_histogram(metrics, {len(LATENCY_BOUNDS): 100})  # the overflow bucket, past the last bound
    assert metrics.latency_quantile(0.5) == LATENCY_BOUNDS[30]
    assert metrics.latency_quantile(0.51) == metrics.latency_quantile(1.0) == math.inf
    with pytest.raises(ValueError, match="between 0 and 1"):
        metrics.latency_quantile(1.5)
    assert LATENCY_BOUNDS[0] == 50e-6 and math.isclose(LATENCY_BOUNDS[4], 100e-6)  # four per doubling


async def test_a_users_trace_config_still_runs(site: Site) -> None:
    book = SiteMetricsBook()
    seen: list[tuple[str, Any]] = []
    user = aiohttp.TraceConfig()

    async def on_start(_: aiohttp.ClientSession, ctx: SimpleNamespace, __: Any) -> None:
        seen.append(("start", ctx.trace_request_ctx))

    async def on_end(_: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
        seen.append(("end", params.response.status))

    user.on_request_start.append(on_start)
    user.on_request_end.append(on_end)
    configs = [user, metrics_trace_config(book.lookup)]
    async with (
        aiohttp.ClientSession(trace_configs=configs) as session,
        session.get(site.url("/status/200"), trace_request_ctx="mine") as resp,
    ):
        await resp.read()
    assert seen == [("start", "mine"), ("end", 200)]
    assert one_site(book).requests == 1


async def test_a_failing_trace_config_after_ours_does_not_unbalance_it(site: Site) -> None:
    """aiohttp sends on_request_exception to every config when a later one's on_request_end raises."""
    book = SiteMetricsBook()
    failing = aiohttp.TraceConfig()

    async def boom(*_: Any) -> None:
        raise RuntimeError("user tracer failed")

    failing.on_request_end.append(boom)
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup), failing]) as session:
        with pytest.raises(RuntimeError, match="user tracer failed"):
            await session.get(site.url("/status/200"))
    snap = one_site(book).snapshot()
    assert (snap.requests, snap.in_flight, snap.responses["2xx"], dict(snap.errors)) == (1, 0, 1, {})


async def test_lookup_none_counts_nothing_and_sites_are_separate(site: Site) -> None:
    book = SiteMetricsBook()

    def only_localhost(url: URL) -> SiteMetrics | None:
        return book.lookup(url) if url.host == "localhost" else None

    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(only_localhost)]) as session:
        await (await session.get(site.url("/status/200"))).read()
        assert book.sites() == ()
        await (await session.get(site.url("/status/404", host="localhost"))).read()
    snap = one_site(book).snapshot()
    assert (snap.requests, snap.responses["4xx"], snap.responses["2xx"]) == (1, 1, 0)


def test_book_normalises_origins_and_bounds_sites() -> None:
    book = SiteMetricsBook(max_sites=2)
    a = book.lookup(URL("http://Example.COM/x"))
    assert a is not None and a.origin == ("http", "example.com", 80)
    assert book.lookup(URL("http://example.com:80/y")) is a
    assert book.lookup(URL("HTTP://EXAMPLE.com/")) is a
    b = book.lookup(URL("https://example.com/"))
    assert b is not None and b is not a and b.origin_text() == "https://example.com"
    a.in_flight = b.in_flight = 1  # both busy: no room can be made (the next test makes some)
    assert book.lookup(URL("http://third.example/")) is None
    assert book.untracked == 1
    assert book.lookup(URL("http://example.com:8080/")) is None  # another port is another site
    assert book.lookup(URL("/relative")) is None
    assert book.lookup(URL("file:///etc/hosts")) is None
    assert book.site(("http", "third.example", 80)).origin == ("http", "third.example", 80)  # site(): always
    assert len(book.sites()) == 3
    assert SiteMetrics(("http", "::1", 8080)).origin_text() == "http://[::1]:8080"
    with pytest.raises(ValueError, match="max_sites"):
        SiteMetricsBook(max_sites=0)


def test_snapshot_is_frozen_and_pool_counters() -> None:
    metrics = SiteMetricsBook().site(("https", "api.example", 443))
    metrics.count_acquisition()
    metrics.count_acquisition()
    metrics.set_sessions(open=2, idle=1)
    snap = metrics.snapshot()
    assert (snap.acquisitions, snap.sessions_open, snap.sessions_idle) == (2, 2, 1)
    assert (snap.latency_p50, snap.latency_p99, snap.latency_count) == (None, None, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.requests = 3  # type: ignore[misc]
    snap.responses["2xx"] = 1  # type: ignore[index]  # a copy: changing it changes nothing else
    assert metrics.snapshot().responses["2xx"] == 0
    metrics.errors["OSError"] = 1
    assert dict(snap.errors) == {}  # a copy, not a view
    assert dataclasses.asdict(metrics.snapshot())["errors"] == {"OSError": 1}  # plain data, for JSON
    with pytest.raises(ValueError, match="idle"):
        metrics.set_sessions(open=1, idle=2)


async def test_observers_hear_each_finished_request(site: Site) -> None:
    book = SiteMetricsBook()
    heard: list[tuple[SiteMetrics, str, int | None, str | None, float]] = []

    class Observer:
        def request_done(
            self,
            metrics: SiteMetrics,
            method: str,
            status: int | None,
            error: str | None,
            seconds: float,
            version: aiohttp.HttpVersion | None,
        ) -> None:
            heard.append((metrics, method, status, error, seconds))

        def connection_closed(self, metrics: SiteMetrics, seconds: float) -> None:
            raise AssertionError("a plain session's connections are not tracked")

    observer = Observer()
    book.add_observer(observer)
    refused = free_port()
    async with aiohttp.ClientSession(trace_configs=[metrics_trace_config(book.lookup)]) as session:
        await (await session.post(site.url("/status/200"))).read()  # 405: only GET is routed
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://127.0.0.1:{refused}/")
        book.remove_observer(observer)
        await (await session.get(site.url("/status/200"))).read()
    assert [(m.port, method, status, error) for m, method, status, error, _ in heard] == [
        (site.server.port, "POST", 405, None),
        (refused, "GET", None, "ClientConnectorError"),
    ]
    assert all(seconds > 0 for *_, seconds in heard)
    with pytest.raises(ValueError, match="not an observer"):
        book.remove_observer(observer)


def test_lookup_must_be_callable() -> None:
    with pytest.raises(TypeError, match="lookup must be a callable"):
        metrics_trace_config("not a function")  # type: ignore[arg-type]


def test_one_config_serves_many_sessions_and_loops() -> None:
    """The registry adds one TraceConfig to every session it builds, on whatever loop."""
    book = SiteMetricsBook()
    config = metrics_trace_config(book.lookup)

    async def one_request() -> None:
        server = Site()
        await server.server.start_server()
        try:
            async with aiohttp.ClientSession(trace_configs=[config]) as session:
                await (await session.get(server.url("/status/200"))).read()
        finally:
            await server.server.close()

    for _ in range(2):
        asyncio.run(one_request())
    assert sum(s.requests for s in book.sites()) == 2


async def test_an_observed_connector_counts_connections_per_site_and_tells_observers(site: Site) -> None:
    book = SiteMetricsBook(max_sites=1)
    closed: list[tuple[str, float]] = []

    class Observer:
        def request_done(self, *_: object) -> None:
            pass

        def connection_closed(self, metrics: SiteMetrics, seconds: float) -> None:
            closed.append((metrics.host, seconds))

    book.add_observer(Observer())
    config = metrics_trace_config(book.lookup)
    tracker = ConnectionTracker(book.lookup)
    connector = ObservedConnector(tracker)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[config]) as session:
        # Two origins on one server: the second is past max_sites, its connection is not counted.
        for host in ("127.0.0.1", "localhost", "127.0.0.1", "localhost"):
            await (await session.get(site.url("/status/200", host))).read()
        (metrics,) = book.sites()
        snap = metrics.snapshot()
        assert (metrics.host, snap.requests, snap.connections_opened, snap.connections_reused) == (
            "127.0.0.1",
            2,
            1,
            1,
        )
        assert (snap.connections_active, snap.connections_idle, snap.connections_closed) == (0, 1, 0)
        assert book.untracked == 3  # 2 requests, and the one new connection (looked up once)
    assert connector.closed  # the session owned it
    for _ in range(1000):
        if closed:
            break
        await asyncio.sleep(0.001)
    assert [host for host, _ in closed] == ["127.0.0.1"] and closed[0][1] > 0
    snap = metrics.snapshot()
    assert (snap.connections_active, snap.connections_idle, snap.connections_closed) == (0, 0, 1)
    assert snap.connection_time == closed[0][1]
    assert repr(tracker) == "<ConnectionTracker open=0>"


def test_snapshot_connection_figures_default_to_zero() -> None:
    metrics = SiteMetricsBook().site(("https", "api.example", 443))
    snap = metrics.snapshot()
    assert (snap.connections_active, snap.connections_idle, snap.connections_closed) == (0, 0, 0)
    assert snap.connection_time == 0.0
    fields = dataclasses.asdict(snap)
    positional = SiteMetricsSnapshot(*[fields[f.name] for f in dataclasses.fields(snap)][:19])
    assert positional.connections_closed == 0  # made the way it was before these fields existed


def test_a_full_book_makes_room_by_forgetting_the_idle_sites_seen_first() -> None:
    book = SiteMetricsBook(max_sites=16)
    for n in range(16):
        site = book.lookup(URL(f"http://site-{n}.example/"))
        assert site is not None
    busy = book.lookup(URL("http://site-0.example/"))
    assert busy is not None
    busy.in_flight = 1  # a request in flight: never forgotten
    newcomer = book.lookup(URL("http://newcomer.example/"))
    assert newcomer is not None and book.untracked == 0
    hosts = {site.host for site in book.sites()}
    # Two (16 // 8) idle sites went, the first seen after the busy one; the busy one stayed.
    assert "site-0.example" in hosts and not {"site-1.example", "site-2.example"} & hosts
    assert len(hosts) == 15 and book.lookup(URL("http://site-1.example/")) is not book.sites()[0]
    for site in book.sites():
        site.in_flight = 1
    assert book.lookup(URL("http://one-too-many.example/")) is None and book.untracked == 1
