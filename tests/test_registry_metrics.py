"""SessionRegistry(metrics=True): every session it builds reports per-site figures to the registry."""

from __future__ import annotations

import aiohttp
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session


class Echo(AbstractSessionContainer):
    @attach_session
    async def status(self, session: aiohttp.ClientSession | None = None) -> int:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/echo")) as resp:
            await resp.read()
            return resp.status


async def test_metrics_count_requests_and_connection_reuse_per_site(upstream: Upstream) -> None:
    registry = SessionRegistry(metrics=True)
    seen: list[str] = []
    mine = aiohttp.TraceConfig()

    async def on_request_end(*_: object) -> None:
        seen.append("end")

    mine.on_request_end.append(on_request_end)
    api = Echo(upstream.url(), registry=registry, trace_configs=[mine])
    other = Echo(upstream.url(), registry=registry, headers={"X-Other": "1"})  # another session
    for _ in range(3):
        assert await api.status() == 200
    assert await other.status() == 200
    (site,) = registry.stats().metrics
    assert site.origin == upstream.origin
    assert site.requests == 4 and site.responses["2xx"] == 4 and site.in_flight == 0
    assert site.connections_opened == 1 and site.connections_reused == 3  # one pool for both sessions
    assert site.latency_p50 is not None and site.latency_p99 is not None
    assert seen == ["end"] * 3  # the user's own trace config still runs
    await registry.close()


async def test_no_metrics_by_default(upstream: Upstream) -> None:
    registry = SessionRegistry()
    assert registry.metrics is None
    assert await Echo(upstream.url(), registry=registry).status() == 200
    assert registry.stats().metrics == ()
    await registry.close()


async def test_a_default_port_site_is_one_site_in_sessions_and_metrics() -> None:
    # Loopback servers always have a port of their own, so the default-port spelling needs its own test:
    # acquiring a session makes no connection, and the site's figures exist from the acquisition on.
    registry = SessionRegistry(metrics=True)
    first, other = "https://api.example.com/v1", "HTTPS://API.Example.com:443/other"  # one site
    async with registry.session(first), registry.session(other):
        stats = registry.stats()
    (session,) = stats.sessions
    (site,) = stats.metrics
    assert session.origin == site.origin == "https://api.example.com"
    assert (site.sessions_open, site.sessions_idle, site.acquisitions) == (1, 0, 2)
    await registry.close()
