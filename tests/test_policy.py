"""Site policies: retries, rate and concurrency limits, through a plain ClientSession with site_middleware.

Real loopback servers (aiohttp's TestServer; raw asyncio servers where the connection itself must fail),
no mocks. No test has a time limit: waits are small, and where a wait must have been honoured only a
lower bound on the loop's clock is asserted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis_server import free_port
from yarl import URL

from asynctools._policy import (
    RateLimit,
    RedisLimit,
    Retry,
    RetryError,
    SitePolicy,
    SiteState,
    site_middleware,
)
from asynctools._policy._middleware import MAX_SPELLINGS
from asynctools._policy._retry import backoff, retry_after

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Backoffs small enough to keep the suite quick; the shape of the schedule is what is tested.
FAST = Retry(backoff=0.001, max_backoff=0.01)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[URL]:
    """A loopback aiohttp server answering every path with *handler*."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", route)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server.make_url("/")
    finally:
        await server.close()


@asynccontextmanager
async def client(
    policy: SitePolicy | None, **kwargs: Any
) -> AsyncIterator[tuple[aiohttp.ClientSession, SiteState]]:
    """A ClientSession whose every request obeys *policy* (any origin), and the state it uses."""
    state = SiteState(policy or SitePolicy(), "http://127.0.0.1")
    lookup = (lambda origin: state) if policy is not None else (lambda origin: None)
    async with aiohttp.ClientSession(middlewares=[site_middleware({}, lookup)], **kwargs) as session:
        try:
            yield session, state
        finally:
            await state.aclose()


class Recorder:
    """A handler answering with the statuses given, in turn (the last one then for good), recording calls."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.times: list[float] = []
        self.bodies: list[bytes] = []

    async def __call__(self, request: web.Request) -> web.Response:
        self.times.append(asyncio.get_running_loop().time())
        self.bodies.append(await request.read())
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return web.Response(status=status, text=str(status), headers=self.headers if status != 200 else {})


# --- the policy objects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "named"),
    [
        (lambda: Retry(attempts=0), ValueError, "attempts"),
        (lambda: Retry(attempts=2.0), TypeError, "2.0"),  # type: ignore[arg-type]
        (lambda: Retry(attempts=True), TypeError, "True"),
        (lambda: Retry(backoff=-1), ValueError, "-1"),
        (lambda: Retry(max_wait=float("inf")), ValueError, "inf"),
        (lambda: Retry(total="60"), TypeError, "'60'"),  # type: ignore[arg-type]
        (lambda: Retry(statuses=503), TypeError, "503"),  # type: ignore[arg-type]
        (lambda: Retry(statuses={700}), ValueError, "700"),
        (lambda: Retry(methods="GET"), TypeError, "'GET'"),  # type: ignore[arg-type]
        (lambda: Retry(methods={"G E T"}), ValueError, "'G E T'"),
        (lambda: RateLimit(0, per=1), ValueError, "requests"),
        (lambda: RateLimit(5, per=0), ValueError, "per"),
        (lambda: RateLimit(5, per=1, burst=6), ValueError, "burst=6"),
        (lambda: RateLimit(5, per=1, burst=2, redis=RedisLimit("redis://h")), ValueError, "burst=2"),
        (lambda: RateLimit(5, per=1, redis="redis://h"), TypeError, "'redis://h'"),  # type: ignore[arg-type]
        (lambda: RedisLimit("http://h"), ValueError, "'http://h'"),
        (lambda: RedisLimit("redis://h", on_error="ignore"), ValueError, "'ignore'"),  # type: ignore[arg-type]
        (lambda: RedisLimit("redis://h", timeout=0), ValueError, "timeout"),
        (lambda: SitePolicy(retry=3), TypeError, "3"),  # type: ignore[arg-type]
        (lambda: SitePolicy(rate=(5000, 3600)), TypeError, "(5000, 3600)"),  # type: ignore[arg-type]
        (lambda: SitePolicy(concurrency=0), ValueError, "concurrency"),
        (lambda: SiteState("policy", "http://a"), TypeError, "'policy'"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_refused_naming_the_value(
    make: Callable[[], object], error: type, named: str
) -> None:
    with pytest.raises(error) as info:
        make()
    assert named in str(info.value)


def test_policies_compare_and_hash_by_value() -> None:
    one = SitePolicy(
        retry=Retry(methods={"get", "post"}, statuses={503}), rate=RateLimit(10, per=1), concurrency=4
    )
    two = SitePolicy(
        retry=Retry(methods={"GET", "POST"}, statuses={503}), rate=RateLimit(10, per=1.0), concurrency=4
    )
    assert one == two and hash(one) == hash(two)
    assert one.retry is not None and one.retry.methods == frozenset({"GET", "POST"})
    assert one != dataclasses.replace(two, concurrency=5)
    assert SitePolicy() == SitePolicy(retry=Retry()) != SitePolicy(retry=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.concurrency = 1  # type: ignore[misc]


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert retry_after({"Retry-After": "7"}, now) == 7.0
    assert retry_after({"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}, now) == 30.0
    assert retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now) == 0.0
    assert retry_after({"retry-after-ms": "250", "Retry-After": "7"}, now) == 0.25  # the precise one first
    assert retry_after({"retry-after-ms": "soon", "Retry-After": "7"}, now) == 7.0
    assert retry_after({"Retry-After": "-3"}, now) is None
    assert retry_after({"Retry-After": "tomorrow"}, now) is None
    assert retry_after({}, now) is None


# --- retries ------------------------------------------------------------------------------------------


async def test_retryable_statuses_are_retried_until_success() -> None:
    recorder = Recorder(503, 502, 200)
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=FAST)) as (session, state),
        session.get(url) as resp,
    ):
        assert resp.status == 200
    assert len(recorder.times) == 3
    stats = state.stats()
    assert dict(stats.retries) == {"503": 1, "502": 1}
    assert (stats.requests, stats.attempts, stats.gave_up, stats.in_flight) == (1, 3, 0, 0)


async def test_last_retryable_response_is_returned_and_raise_for_status_still_works() -> None:
    recorder = Recorder(503)
    policy = SitePolicy(retry=dataclasses.replace(FAST, attempts=4))
    async with serve(recorder) as url, client(policy, raise_for_status=True) as (session, state):
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await session.get(url)
        assert info.value.status == 503
    assert len(recorder.times) == 4
    assert state.stats().gave_up == 1 and state.stats().retries == {"503": 3}


async def test_retry_after_ms_is_honoured() -> None:
    recorder = Recorder(429, 200, headers={"retry-after-ms": "200"})
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=FAST)) as (session, _),
        session.get(url) as resp,
    ):
        assert resp.status == 200
    assert recorder.times[1] - recorder.times[0] >= 0.2


async def test_retry_after_beyond_max_wait_is_not_waited_for() -> None:
    recorder = Recorder(429, 200, headers={"Retry-After": "3600"})
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=FAST)) as (session, state),
        session.get(url) as resp,
    ):
        assert resp.status == 429 and resp.headers["Retry-After"] == "3600"
    assert len(recorder.times) == 1
    assert state.stats().gave_up == 1 and not state.stats().retries


async def test_total_time_bounds_the_retries() -> None:
    recorder = Recorder(503, 200, headers={"Retry-After": "20"})
    policy = SitePolicy(retry=dataclasses.replace(FAST, total=10.0))
    async with serve(recorder) as url, client(policy) as (session, state), session.get(url) as resp:
        assert resp.status == 503
    assert len(recorder.times) == 1 and state.stats().gave_up == 1


async def test_non_idempotent_methods_are_retried_only_when_opted_in() -> None:
    recorder = Recorder(503, 200)
    async with serve(recorder) as url:
        async with (
            client(SitePolicy(retry=FAST)) as (session, _),
            session.post(url, data=b"x") as resp,
        ):
            assert resp.status == 503
        assert len(recorder.times) == 1
        recorder.statuses = [503, 200]
        opted_in = SitePolicy(retry=dataclasses.replace(FAST, methods=FAST.methods | {"POST"}))
        async with client(opted_in) as (session, _), session.post(url, data=b"x") as resp:
            assert resp.status == 200
        assert len(recorder.times) == 3


async def test_a_body_held_in_memory_is_sent_again_whole() -> None:
    recorder = Recorder(503, 503, 200)
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=FAST)) as (session, _),
        session.put(url, json={"n": 1}) as resp,
    ):
        assert resp.status == 200
    assert recorder.bodies == [b'{"n": 1}'] * 3


async def test_a_streamed_body_is_never_sent_twice() -> None:
    recorder = Recorder(503, 200)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=FAST)) as (session, state),
        session.put(url, data=chunks()) as resp,
    ):
        assert resp.status == 503
    assert recorder.bodies == [b"ab"]
    assert state.stats().attempts == 1


@asynccontextmanager
async def raw_server(answer: Callable[[int], bytes | None]) -> AsyncIterator[tuple[URL, list[int]]]:
    """A TCP server that reads a request and writes ``answer(n)`` for connection n (None: just close)."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        await reader.readuntil(b"\r\n\r\n")
        reply = answer(len(connections) - 1)
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield URL(f"http://127.0.0.1:{port}/"), connections
    finally:
        server.close()
        await server.wait_closed()


OK_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def test_a_dropped_connection_is_retried() -> None:
    async with (
        raw_server(lambda n: OK_REPLY if n == 2 else None) as (url, connections),
        client(SitePolicy(retry=FAST)) as (session, state),
        session.get(url) as resp,
    ):
        assert await resp.text() == "ok"
    assert len(connections) == 3
    assert state.stats().retries == {"ServerDisconnectedError": 2}


async def test_giving_up_raises_retry_error_with_every_attempt() -> None:
    async with (
        raw_server(lambda n: None) as (url, connections),
        client(SitePolicy(retry=FAST)) as (session, state),
    ):
        with pytest.raises(RetryError) as info:
            await session.get(url)
    error = info.value
    # One chain run: aiohttp's own retry of a stale connection must not re-run the policy.
    assert len(connections) == 3
    assert isinstance(error, aiohttp.ClientConnectionError)
    assert isinstance(error.__cause__, aiohttp.ServerDisconnectedError)
    assert error.attempts == 3 and len(error.failures) == 3 and len(error.waits) == 2
    assert all(failure.startswith("ServerDisconnectedError") for failure in error.failures)
    assert "3 attempts" in str(error) and str(url) in str(error)
    assert state.stats().gave_up == 1


async def test_a_refused_connection_is_retried_whatever_the_method() -> None:
    url = URL(f"http://127.0.0.1:{free_port()}/")  # nothing listens: refused, nothing sent
    async with client(SitePolicy(retry=FAST)) as (session, state):
        with pytest.raises(RetryError) as info:
            await session.post(url, data=b"x")
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert state.stats().attempts == 3


async def test_a_timeout_of_the_users_choosing_is_not_retried() -> None:
    calls = 0
    never = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await never.wait()
        return web.Response()

    timeout = aiohttp.ClientTimeout(sock_read=0.05)
    async with serve(slow) as url, client(SitePolicy(retry=FAST), timeout=timeout) as (session, state):
        with pytest.raises(aiohttp.ServerTimeoutError):
            await session.get(url)
        never.set()
    assert calls == 1 and state.stats().attempts == 1


async def test_without_a_policy_requests_are_untouched() -> None:
    recorder = Recorder(503, 200)
    async with serve(recorder) as url, client(None) as (session, state), session.get(url) as resp:
        assert resp.status == 503
    assert len(recorder.times) == 1 and state.stats().requests == 0


async def test_retry_none_sends_once() -> None:
    recorder = Recorder(503, 200)
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=None)) as (session, state),
        session.get(url) as resp,
    ):
        assert resp.status == 503
    assert len(recorder.times) == 1 and state.stats().attempts == 1


# --- rate limits --------------------------------------------------------------------------------------


async def test_rate_limit_waits_and_never_exceeds_the_window() -> None:
    recorder = Recorder(200)
    per, limit, count = 0.3, 3, 8
    policy = SitePolicy(retry=None, rate=RateLimit(limit, per=per))
    async with serve(recorder) as url, client(policy) as (session, state):
        start = asyncio.get_running_loop().time()
        statuses = await asyncio.gather(*(_status(session, url) for _ in range(count)))
    assert statuses == [200] * count
    # Request k cannot start before k // limit whole windows have passed (starts precede arrivals).
    for k, arrived in enumerate(sorted(recorder.times)):
        assert arrived - start >= per * (k // limit), k
    stats = state.stats()
    assert stats.rate_waits == count - limit and stats.rate_waiting == 0
    assert stats.rate_wait_seconds >= per


async def test_burst_spreads_requests_out() -> None:
    recorder = Recorder(200)
    policy = SitePolicy(retry=None, rate=RateLimit(4, per=0.2, burst=2))
    async with serve(recorder) as url, client(policy) as (session, _):
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*(_status(session, url) for _ in range(5)))
    # Two back to back, then one every 0.05 s.
    for k, arrived in enumerate(sorted(recorder.times)):
        assert arrived - start >= 0.05 * max(0, k - 1), k


async def test_a_cancelled_waiter_takes_no_place() -> None:
    recorder = Recorder(200)
    per = 0.2
    loop = asyncio.get_running_loop()
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=None, rate=RateLimit(1, per=per))) as (session, state),
    ):
        await _status(session, url)
        first_done = loop.time()
        waiter = asyncio.create_task(_status(session, url))
        while state.stats().rate_waiting == 0:  # noqa: ASYNC110 - the figure is all there is to watch
            await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert state.stats().rate_waiting == 0
        while loop.time() < first_done + per:  # noqa: ASYNC110 - asyncio may wake a clock tick early
            await asyncio.sleep(first_done + per - loop.time())
        # The window is empty again: had the cancelled waiter kept a place, this one would wait for it.
        await _status(session, url)
    assert state.stats().rate_waits == 1
    assert len(recorder.times) == 2


async def test_a_full_window_is_free_again_once_it_passed() -> None:
    """Finish times the limiter has not dropped yet (it drops them lazily) never hold a request back
    once their window has passed: after each pause, the whole limit goes at once, without waiting."""
    recorder = Recorder(200)
    per, limit = 0.1, 4
    loop = asyncio.get_running_loop()
    async with (
        serve(recorder) as url,
        client(SitePolicy(retry=None, rate=RateLimit(limit, per=per))) as (
            session,
            state,
        ),
    ):
        for round_ in range(3):
            assert await asyncio.gather(*(_status(session, url) for _ in range(limit))) == [200] * limit
            assert state.stats().rate_waits == 0, round_
            done = loop.time()
            while loop.time() < done + per:  # noqa: ASYNC110 - asyncio may wake a clock tick early
                await asyncio.sleep(done + per - loop.time())
        assert await asyncio.gather(*(_status(session, url) for _ in range(limit + 1))) == [200] * (limit + 1)
    assert state.stats().rate_waits == 1  # the one over the limit waited: the log still counts


async def _status(session: aiohttp.ClientSession, url: URL) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


# --- finding a request's site -------------------------------------------------------------------------


async def test_the_middleware_asks_once_per_spelling_and_forgets_past_its_bound() -> None:
    """A site is asked of find() at its first request only; the dict of answers never grows past
    MAX_SPELLINGS (a crawler's sites come and go): full, it starts again from the request at hand."""
    state = SiteState(SitePolicy(retry=FAST), "http://127.0.0.1")
    asked: list[tuple[str, str, int]] = []

    def find(origin: tuple[str, str, int]) -> SiteState:
        asked.append(origin)
        return state

    known: dict[tuple[str, str], SiteState | None] = {}
    async with (
        serve(_ok) as url,
        aiohttp.ClientSession(middlewares=[site_middleware(known, find)]) as session,
    ):
        assert [await _status(session, url) for _ in range(3)] == [200] * 3
        assert asked == [("http", "127.0.0.1", url.port)]
        assert known == {("http", f"127.0.0.1:{url.port}"): state}
        known.clear()
        known.update({("http", f"elsewhere-{n}"): None for n in range(MAX_SPELLINGS)})
        assert await _status(session, url) == 200
        assert known == {("http", f"127.0.0.1:{url.port}"): state}
    assert len(asked) == 2 and state.stats().requests == 4


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# --- concurrency --------------------------------------------------------------------------------------


async def test_concurrency_limit_holds_across_sessions() -> None:
    active = peak = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return web.Response(text="ok")

    state = SiteState(SitePolicy(concurrency=2), "http://127.0.0.1")
    middleware = site_middleware({}, lambda origin: state)
    async with (
        serve(busy) as url,
        aiohttp.ClientSession(middlewares=[middleware]) as one,
        aiohttp.ClientSession(middlewares=[middleware]) as two,
    ):
        await asyncio.gather(*(_status(session, url) for session in [one, two] * 4))
    assert peak == 2
    assert state.stats().in_flight == 0


async def test_concurrency_place_is_held_until_the_body_is_released() -> None:
    calls = 0
    gate = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"x" * 10)
        if calls == 1:
            await gate.wait()  # the first body stays unfinished until the test says so
        return response

    async with serve(stream) as url, client(SitePolicy(concurrency=1)) as (session, state):
        first = await session.get(url)
        assert state.stats().in_flight == 1
        second = asyncio.create_task(_status(session, url))
        await asyncio.sleep(0.05)
        assert calls == 1, "the second request went out while the first body was still unread"
        gate.set()
        assert await first.read() == b"x" * 10  # read to the end: the connection is released
        assert await second == 200
    assert calls == 2 and state.stats().in_flight == 0


async def test_a_response_without_body_frees_its_place_at_once() -> None:
    async with serve(Recorder(204)) as url, client(SitePolicy(concurrency=1)) as (session, state):
        resp = await session.get(url)
        assert resp.status == 204
        assert state.stats().in_flight == 0
        resp.release()


def test_stats_are_a_frozen_snapshot() -> None:
    state = SiteState(SitePolicy(), "http://a")
    stats = state.stats()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.requests = 1  # type: ignore[misc]
    stats.retries["503"] = 1  # type: ignore[index]  # a copy: changing it changes nothing else
    assert state.stats().retries == {}
    assert dataclasses.asdict(stats)["retries"] == {"503": 1}  # plain data, for JSON


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    retry = Retry(backoff=0.1, max_backoff=1.0)
    for n, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (40, 1.0), (1000, 1.0)]:
        waits = [backoff(retry, n) for _ in range(200)]
        assert all(0.0 <= wait <= cap for wait in waits), n
        assert max(waits) > cap / 2 and min(waits) < cap / 2, n  # spread over the whole range
