"""SessionRegistry(metrics=True): every session it builds reports per-site figures to the registry."""

from __future__ import annotations

import aiohttp

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session


class Echo(AbstractSessionContainer):
    @attach_session
    async def status(self, session: aiohttp.ClientSession | None = None) -> int:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/echo")) as resp:
            await resp.read()
            return resp.status


async def test_metrics_count_requests_and_connection_reuse_per_site(upstream):
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


async def test_no_metrics_by_default(upstream):
    registry = SessionRegistry()
    assert registry.metrics is None
    assert await Echo(upstream.url(), registry=registry).status() == 200
    assert registry.stats().metrics == ()
    await registry.close()
