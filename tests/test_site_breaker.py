"""A failing site is protected: retries spend a budget, and a circuit breaker stops sending for a while."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from asynctools import Breaker, CircuitOpenError, Retry, SessionRegistry, SitePolicy
from asynctools._policy._budget import FLOOR_PER_SECOND


class Failing:
    """A loopback server answering *status* to everything (200 once ``healthy``), counting arrivals."""

    def __init__(self) -> None:
        self.status = 503
        self.headers: dict[str, str] = {}
        self.arrivals = 0
        self.hold = asyncio.Event()
        self.hold.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals += 1
        await self.hold.wait()
        return web.Response(status=self.status, text="x", headers=self.headers)


@pytest.fixture
async def failing() -> AsyncIterator[tuple[Failing, str]]:
    state = Failing()
    app = web.Application()
    app.router.add_get("/", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("/"))
    finally:
        state.hold.set()
        await server.close()


async def test_the_retry_budget_caps_retries_at_a_share_of_requests(failing: tuple[Failing, str]) -> None:
    server, url = failing
    registry = SessionRegistry(
        policies={url: SitePolicy(retry=Retry(attempts=3, budget=0.1, backoff=0.001, max_backoff=0.001))}
    )
    started = time.monotonic()
    async with registry.session(url) as session:
        for _ in range(100):
            async with session.get(url) as resp:
                assert resp.status == 503  # retried or not, the last answer is returned
    elapsed = time.monotonic() - started
    # Without a budget: 300 attempts. With it: the requests, a tenth of them, and the floor's retries
    # (a second's worth to start with, then 10 a second).
    retries = server.arrivals - 100
    print(f"100 failing requests: {server.arrivals} attempts in {elapsed:.2f} s")
    assert 0 < retries <= 100 * 0.1 + FLOOR_PER_SECOND * (1 + elapsed) + 1
    (site,) = registry.stats().sites
    assert site.budget_refusals > 0 and site.attempts == server.arrivals
    assert site.gave_up == 100
    await registry.close()


async def test_without_a_budget_every_request_retries(failing: tuple[Failing, str]) -> None:
    server, url = failing
    registry = SessionRegistry(
        policies={url: SitePolicy(retry=Retry(attempts=3, budget=None, backoff=0.001, max_backoff=0.001))}
    )
    async with registry.session(url) as session:
        for _ in range(30):
            async with session.get(url) as resp:
                assert resp.status == 503
    assert server.arrivals == 90
    assert registry.stats().sites[0].budget_refusals == 0
    await registry.close()


async def test_the_breaker_opens_refuses_at_once_then_a_probe_closes_it(failing: tuple[Failing, str]) -> None:
    server, url = failing
    policy = SitePolicy(retry=None, breaker=Breaker(failures=3, cooldown=0.2))
    registry = SessionRegistry(policies={url: policy})
    async with registry.session(url) as session:
        for _ in range(3):
            async with session.get(url) as resp:
                assert resp.status == 503
        assert registry.stats().sites[0].breaker == "open"
        with pytest.raises(CircuitOpenError, match="3 attempts in a row") as caught:
            await session.get(url)
        assert caught.value.retry_in > 0 and server.arrivals == 3  # nothing sent
        await asyncio.sleep(0.2)
        assert registry.stats().sites[0].breaker == "half-open"
        # The probe goes; while it is in flight the others are still refused.
        server.hold.clear()
        probe = asyncio.ensure_future(session.get(url))
        while server.arrivals < 4:  # noqa: ASYNC110
            await asyncio.sleep(0.001)  # (polled: the server counts arrivals)
        with pytest.raises(CircuitOpenError, match="half-open \\(its probe is in flight\\)"):
            await session.get(url)
        server.status = 200
        server.hold.set()
        async with await probe as resp:
            assert resp.status == 200
        assert registry.stats().sites[0].breaker == "closed"
        async with session.get(url) as resp:
            assert resp.status == 200
    site = registry.stats().sites[0]
    assert (site.breaker_opened, server.arrivals) == (1, 5)
    await registry.close()


async def test_a_failed_probe_opens_it_again_and_a_cancelled_one_lets_another_go(
    failing: tuple[Failing, str],
) -> None:
    server, url = failing
    registry = SessionRegistry(
        policies={url: SitePolicy(retry=None, breaker=Breaker(failures=1, cooldown=0.1))}
    )
    async with registry.session(url) as session:
        async with session.get(url) as resp:
            assert resp.status == 503
        await asyncio.sleep(0.1)
        async with session.get(url) as resp:  # the probe fails
            assert resp.status == 503
        assert registry.stats().sites[0].breaker == "open"
        await asyncio.sleep(0.1)
        server.hold.clear()
        probe = asyncio.ensure_future(session.get(url))
        while server.arrivals < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.001)  # (polled: the server counts arrivals)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        server.status = 200
        server.hold.set()
        async with session.get(url) as resp:  # the next request is the probe now
            assert resp.status == 200
    site = registry.stats().sites[0]
    assert (site.breaker, site.breaker_opened, site.in_flight) == ("closed", 2, 0)
    await registry.close()


async def test_a_breaker_counts_connection_errors() -> None:
    from redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    registry = SessionRegistry(
        policies={url: SitePolicy(retry=None, breaker=Breaker(failures=2, cooldown=60))}
    )
    async with registry.session(url) as session:
        for _ in range(2):
            with pytest.raises(OSError):
                await session.get(url)
        with pytest.raises(CircuitOpenError):
            await session.get(url)
    await registry.close()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Breaker(failures=0), ValueError, "failures"),
        (lambda: Breaker(cooldown=0), ValueError, "cooldown"),
        (lambda: Breaker(failures="5"), TypeError, "failures"),  # type: ignore[arg-type]
        (lambda: Retry(budget=0), ValueError, "budget"),
        (lambda: Retry(budget=float("inf")), ValueError, "budget"),
        (lambda: Retry(budget="20%"), ValueError, "budget"),  # type: ignore[arg-type]
        (lambda: SitePolicy(breaker=5), TypeError, "breaker"),  # type: ignore[arg-type]
    ],
)
def test_bad_budget_and_breaker_arguments_are_refused(
    make: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]


async def test_a_breaker_opened_by_a_requests_own_failures_returns_its_last_answer(
    failing: tuple[Failing, str],
) -> None:
    server, url = failing
    retry = Retry(attempts=5, backoff=0.001, max_backoff=0.001)
    registry = SessionRegistry(
        policies={url: SitePolicy(retry=retry, breaker=Breaker(failures=3, cooldown=30))}
    )
    async with registry.session(url) as session, session.get(url) as resp:
        assert resp.status == 503 and await resp.text() == "x"  # the answer in hand, readable
    site = registry.stats().sites[0]
    assert (server.arrivals, site.attempts, dict(site.retries), site.gave_up) == (3, 3, {"503": 2}, 1)
    await registry.close()


async def test_retry_after_zero_spends_the_budget(failing: tuple[Failing, str]) -> None:
    server, url = failing
    server.headers = {"Retry-After": "0"}
    retry = Retry(attempts=3, budget=0.1, backoff=0.001, max_backoff=0.001)
    registry = SessionRegistry(policies={url: SitePolicy(retry=retry)})
    async with registry.session(url) as session:
        for _ in range(100):
            async with session.get(url) as resp:
                assert resp.status == 503
    assert server.arrivals < 200 and registry.stats().sites[0].budget_refusals > 0  # 300 unbudgeted
    await registry.close()
