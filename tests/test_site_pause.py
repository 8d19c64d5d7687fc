"""A 429 or 503 asking to wait pauses every request to its site, new ones and retries, with jitter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from asynctools import Retry, SessionRegistry, SitePausedError, SitePolicy
from asynctools._policy._pause import MAX_PAUSE, SitePause


class Quota:
    """A loopback server accepting *limit* requests in any *window* seconds; past that, 429 asking to wait
    *window* (``retry-after-ms``). Stamps every arrival, with its answer."""

    def __init__(self, limit: int, window: float, status: int = 429) -> None:
        self.limit, self.window, self.status = limit, window, status
        self.accepted: list[float] = []
        self.arrivals: list[tuple[float, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        recent = [t for t in self.accepted if t > now - self.window]
        if len(recent) >= self.limit:
            self.arrivals.append((now, self.status))
            wait = str(int(self.window * 1000))
            headers = {"retry-after-ms": wait, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0.2"}
            return web.Response(status=self.status, headers=headers)
        self.accepted.append(now)
        self.arrivals.append((now, 200))
        return web.Response(text="ok")


async def serve(quota: Quota) -> TestServer:
    app = web.Application()
    app.router.add_get("/", quota.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def quota() -> AsyncIterator[tuple[Quota, str]]:
    state = Quota(limit=5, window=0.3)
    server = await serve(state)
    try:
        yield state, str(server.make_url("/"))
    finally:
        await server.close()


async def test_a_refusal_pauses_the_whole_site_and_retries_are_spread(quota: tuple[Quota, str]) -> None:
    server, url = quota
    # budget=None: pauses under a second (these are 0.3 s) spend the retry budget, which is not under test
    retry = Retry(attempts=20, budget=None)
    registry = SessionRegistry(policies={url: SitePolicy(retry=retry)})
    async with registry.session(url) as session:

        async def get() -> int:
            async with session.get(url) as resp:
                return resp.status

        statuses = await asyncio.gather(*(get() for _ in range(20)))
    assert statuses == [200] * 20
    first_refusal = next(t for t, status in server.arrivals if status == 429)
    burst = [t for t, _ in server.arrivals if t <= first_refusal + 0.05]
    later = [t for t, _ in server.arrivals if t > first_refusal + 0.05]
    # Nothing reached the site while it had asked to wait: the pause holds every request back.
    assert len(burst) == 20 and later and min(later) >= first_refusal + server.window
    # (How the waiters are spread over the pause's end is tested on SitePause itself, below.)
    refused = sum(status == 429 for _, status in server.arrivals)
    print(f"20 requests: {len(server.arrivals)} attempts, {refused} refused")  # 50 and 30 without pauses
    (site,) = registry.stats().sites
    assert site.pauses >= 1 and site.pause_seconds >= server.window
    # Each refusal after the burst re-pauses the site; a request per round at most is refused.
    assert refused - 15 <= 15 // server.limit * 2
    await registry.close()


async def test_a_pause_holds_back_requests_that_have_no_retry_and_fails_past_max_wait() -> None:
    state = Quota(limit=1, window=0.3, status=503)
    server = await serve(state)
    url = str(server.make_url("/"))
    registry = SessionRegistry(policies={url: SitePolicy(retry=None)})
    async with registry.session(url) as session:
        for expected in (200, 503):
            async with session.get(url) as resp:
                assert resp.status == expected  # no retry: the 503 is the answer
        async with session.get(url) as resp:  # waits out the pause the 503 asked for
            assert resp.status == 200
        assert [status for _, status in state.arrivals] == [200, 503, 200]
        assert state.arrivals[2][0] - state.arrivals[1][0] >= state.window
    await registry.close()
    # A pause longer than the policy's max_wait fails the requests it holds back at once, saying why.
    state.window = 5.0
    registry = SessionRegistry(policies={url: SitePolicy(retry=Retry(attempts=1, max_wait=1.0))})
    async with registry.session(url) as session:
        async with session.get(url) as resp:
            assert resp.status == 503  # the window of the first registry's requests is still full
        with pytest.raises(SitePausedError, match="asked to wait") as caught:
            await session.get(url)
        assert isinstance(caught.value, aiohttp.ClientError) and caught.value.seconds > 1.0
        assert len(state.arrivals) == 4  # refused before it was sent
    await registry.close()
    await server.close()


async def test_another_sites_requests_are_not_held_back_and_a_cancelled_wait_counts_nothing() -> None:
    paused, free = Quota(limit=1, window=20.0), Quota(limit=100, window=1.0)
    paused_server, free_server = await serve(paused), await serve(free)
    paused_url, free_url = str(paused_server.make_url("/")), str(free_server.make_url("/"))
    policy = SitePolicy(retry=None, concurrency=2)
    registry = SessionRegistry(policies={paused_url: policy, free_url: policy})
    async with registry.session(paused_url) as session:
        for expected in (200, 429):  # the site now asks for 20 s (under the default max_wait)
            async with session.get(paused_url) as resp:
                assert resp.status == expected
        held = asyncio.ensure_future(session.get(paused_url))
        while not held.done() and registry.stats().sites[0].pauses == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.001)  # (polled: no event says "paused")
        async with session.get(free_url) as resp:  # another site of the same session goes at once
            assert resp.status == 200
        assert not held.done()
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
    by_site = {s.origin: s for s in registry.stats().sites}
    assert [s.in_flight for s in by_site.values()] == [0, 0]
    assert len(paused.arrivals) == 2 and len(free.arrivals) == 1
    await registry.close()
    await paused_server.close()
    await free_server.close()


async def test_one_answer_asking_twice_is_one_pause_and_no_pause_is_endless() -> None:
    state = Quota(limit=1, window=0.2)
    server = await serve(state)
    url = str(server.make_url("/"))
    registry = SessionRegistry(policies={url: SitePolicy(retry=None, from_headers=True)})
    async with registry.session(url) as session:
        async with session.get(url) as resp:
            assert resp.status == 200
        state.status = 429
        async with session.get(url) as resp:  # both headers: Retry-After and a spent quota
            assert resp.status == 429
        assert registry.stats().sites[0].pauses == 1
    await registry.close()
    await server.close()
    pause = SitePause()
    pause.ask(1e23, "429 Retry-After")
    assert pause.seconds == pytest.approx(MAX_PAUSE) and pause.until - time.monotonic() <= MAX_PAUSE


async def test_the_requests_a_pause_holds_back_go_spread_over_its_length() -> None:
    pause = SitePause()
    pause.ask(0.1, "429 Retry-After")
    woke: list[float] = []

    async def waiter() -> None:
        await pause.wait("http://site.example", max_wait=30)
        woke.append(time.monotonic())

    start = time.monotonic()
    await asyncio.gather(*(waiter() for _ in range(10)))
    assert min(woke) >= start + 0.1  # none before the pause's end
    # Full jitter over the pause's length: ten waiters spread, not in one instant (ten uniform draws
    # over 0.1 s span less than 0.02 s about once in 200,000 runs; a slow machine spreads them more).
    assert max(woke) - min(woke) > 0.02
    assert pause.until == 0.0  # over
