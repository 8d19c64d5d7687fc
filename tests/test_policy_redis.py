"""Rate limits shared through a real redis-server (started by the fixture), and Redis being unreachable."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import cast

import aiohttp
import pytest
import redis.asyncio
from redis_server import free_port, redis_server_url
from test_policy import Recorder, serve
from yarl import URL

from asynctools._policy import RateLimit, RedisLimit, RedisLimitError, SitePolicy, SiteState, site_middleware
from asynctools._policy._rate import RedisLimiter, make_limiter


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from redis_server_url(tmp_path_factory)


def limit(url: str, requests: int, per: int, **options: object) -> SitePolicy:
    """A policy whose only part is a Redis-shared rate limit, under keys no other test uses."""
    shared = RedisLimit(url, prefix=f"test-{uuid.uuid4().hex}", **options)  # type: ignore[arg-type]
    return SitePolicy(retry=None, rate=RateLimit(requests, per=per, redis=shared))


# One process of the pair: 5 requests at once under a limit of 5 an hour shared with the other process.
# Once every request has either been answered or is held back by the limit, it prints how many were
# answered and cancels the rest (an hour is longer than any test).
CLIENT = """
import asyncio, sys
import aiohttp
from asynctools._policy import RateLimit, RedisLimit, SitePolicy, SiteState, site_middleware

async def main(url, redis_url, prefix):
    policy = SitePolicy(retry=None, rate=RateLimit(5, per=3600, redis=RedisLimit(redis_url, prefix=prefix)))
    state = SiteState(policy, "http://127.0.0.1")
    async with aiohttp.ClientSession(middlewares=[site_middleware({}, lambda _: state)]) as session:
        async def one():
            async with session.get(url) as resp:
                await resp.read()
        tasks = [asyncio.create_task(one()) for _ in range(5)]
        while sum(t.done() for t in tasks) + state.stats().rate_waiting < len(tasks):
            await asyncio.sleep(0.01)
        answered = sum(t.done() and t.exception() is None for t in tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await state.aclose()
    print(answered)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_two_processes_sharing_a_limit_stay_within_it_together(redis_url: str) -> None:
    recorder = Recorder(200)
    prefix = f"test-{uuid.uuid4().hex}"
    async with serve(recorder) as url:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, str(url), redis_url, prefix, stdout=asyncio.subprocess.PIPE
            )
            for _ in range(2)
        ]
        outputs = await asyncio.gather(*(process.communicate() for process in processes))
    assert [process.returncode for process in processes] == [0, 0]
    answered = [int(out) for out, _ in outputs]
    # Each alone would send all 5 of its requests: together they sent 5 in all.
    assert sum(answered) == 5 and len(recorder.times) == 5


async def test_requests_over_a_shared_limit_wait_for_the_window(redis_url: str) -> None:
    recorder = Recorder(200)
    policy = limit(redis_url, 2, per=1)
    async with (
        serve(recorder) as url,
        client_for(policy) as (session, state),
    ):
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*(_get(session, url) for _ in range(3)))
    assert sorted(recorder.times)[2] - start >= 1.0
    assert state.stats().rate_waits == 1 and state.stats().rate_waiting == 0


async def test_unreachable_redis_fails_closed_by_default() -> None:
    recorder = Recorder(200)
    redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with serve(recorder) as url, client_for(limit(redis, 5, per=60)) as (session, state):
        with pytest.raises(RedisLimitError) as info:
            await session.get(url)
    assert isinstance(info.value, aiohttp.ClientError)
    assert redis in str(info.value) and "on_error='local'" in str(info.value)
    assert recorder.times == [] and state.stats().redis_errors == 1


async def test_a_redis_that_never_answers_times_out_instead_of_hanging() -> None:
    silent: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    redis = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    try:
        async with (
            serve(Recorder(200)) as url,
            client_for(limit(redis, 5, per=60, timeout=0.1)) as (session, _),
        ):
            with pytest.raises(RedisLimitError) as info:
                await session.get(url)
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()
    assert isinstance(
        info.value.__cause__, (TimeoutError, asyncio.TimeoutError, OSError)
    ) or "Timeout" in repr(info.value.__cause__)


async def test_unreachable_redis_with_local_fallback_counts_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(200)
    redis = f"redis://127.0.0.1:{free_port()}/0"
    policy = limit(redis, 1, per=3600, on_error="local", recheck=3600.0)
    async with serve(recorder) as url, client_for(policy) as (session, state):
        with caplog.at_level(logging.WARNING, logger="asynctools"):
            assert await _get(session, url) == 200
        assert redis in caplog.text
        # The local limit holds meanwhile: a second request within the hour waits.
        waiter = asyncio.create_task(_get(session, url))
        while state.stats().rate_waiting == 0:  # noqa: ASYNC110 - the figure is all there is to watch
            await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(recorder.times) == 1 and state.stats().redis_errors == 1


@asynccontextmanager
async def client_for(policy: SitePolicy) -> AsyncIterator[tuple[aiohttp.ClientSession, SiteState]]:
    state = SiteState(policy, "http://127.0.0.1")
    try:
        async with aiohttp.ClientSession(middlewares=[site_middleware({}, lambda _: state)]) as session:
            yield session, state
    finally:
        await state.aclose()


async def _get(session: aiohttp.ClientSession, url: URL) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


# --- places given back (a place held in Redis by mistake blocks every process for five minutes) -------


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def places(client: redis.asyncio.Redis, prefix: str) -> list[tuple[bytes, float, float]]:
    """Every place under *prefix*: (name, score, seconds from Redis's clock now to when it stops counting)."""
    seconds, micros = await client.time()
    now = seconds + micros / 1e6
    found: list[tuple[bytes, float, float]] = []
    # The client does not decode responses: names are bytes, and scores floats (score_cast_func).
    for key in cast("list[bytes]", await client.keys(f"{prefix}:*")):
        if key.endswith(b":gone"):  # places given back before they were taken, not places
            continue
        members = cast("list[tuple[bytes, float]]", await client.zrange(key, 0, -1, withscores=True))
        for name, score in members:
            found.append((name, score, score - now))
    return found


ONE_REQUEST = """
import asyncio, sys
import aiohttp
from asynctools import RateLimit, RedisLimit, SessionRegistry, SitePolicy

async def main(url, redis_url, prefix):
    policy = SitePolicy(retry=None, rate=RateLimit(5, per=1, redis=RedisLimit(redis_url, prefix=prefix)))
    registry = SessionRegistry(policies={url: policy})
    async with registry.session(url) as session, session.get(url) as resp:
        await resp.read()
    # main() returns at once: asyncio.run() cancels what is still pending, the give-back included

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_script_that_returns_right_after_its_request_leaves_no_place_held(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    async with serve(Recorder()) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ONE_REQUEST, str(url), redis_url, prefix
        )
        assert await process.wait() == 0
    async with redis_client(redis_url) as client:
        held = await places(client, prefix)
    assert len(held) == 1
    (_, _, counted_for) = held[0]
    assert counted_for <= 1.0  # finished: counted for `per` seconds from its answer, not 300 s in flight


async def test_a_place_taken_by_an_acquire_cancelled_in_its_round_trip_is_given_back(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    rate = RateLimit(2, per=60, redis=RedisLimit(redis_url, prefix=prefix))
    limiter = make_limiter(rate, "http://127.0.0.1")
    assert isinstance(limiter, RedisLimiter)
    script = limiter._acquire_script

    async def cancelled_after_the_server_ran_it(**kwargs: object) -> object:
        await script(**kwargs)  # the place is taken in Redis...
        raise asyncio.CancelledError  # ...and the answer never reaches us (a ClientTimeout, a cancel)

    limiter._acquire_script = cancelled_after_the_server_ran_it
    with pytest.raises(asyncio.CancelledError):
        await limiter.acquire()
    await limiter.aclose()  # waits for the give-back
    async with redis_client(redis_url) as client:
        assert await places(client, prefix) == []


async def test_a_give_back_that_reaches_redis_before_its_acquire_leaves_no_place_held(redis_url: str) -> None:
    """The give-back travels on another connection than the acquire it undoes: on a slow network it
    may arrive first. The acquire arriving after it must then take nothing."""
    prefix = f"test-{uuid.uuid4().hex}"
    rate = RateLimit(1, per=60, redis=RedisLimit(redis_url, prefix=prefix))
    limiter = make_limiter(rate, "http://127.0.0.1")
    assert isinstance(limiter, RedisLimiter)
    script = limiter._acquire_script
    delayed: list[dict[str, object]] = []

    async def cancelled_before_the_server_ran_it(**kwargs: object) -> object:
        delayed.append(kwargs)  # still on its way to Redis...
        raise asyncio.CancelledError  # ...when the caller gives up

    limiter._acquire_script = cancelled_before_the_server_ran_it
    with pytest.raises(asyncio.CancelledError):
        await limiter.acquire()
    await limiter.aclose()  # the give-back reaches Redis
    (late,) = delayed
    assert await script(**late) == b""  # the acquire arrives at last: it takes nothing
    await limiter.aclose()
    async with redis_client(redis_url) as client:
        assert await places(client, prefix) == []
    # The whole limit (1) is free for the next limiter on this window.
    other = make_limiter(rate, "http://127.0.0.1")
    assert isinstance(other, RedisLimiter)
    other.finish(await other.acquire())
    await other.aclose()
    assert other.figures.waits == 0


async def test_equal_limits_spelt_differently_count_in_one_window(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    shared = RedisLimit(redis_url, prefix=prefix)
    limiters = [make_limiter(RateLimit(3, per=per, redis=shared), "http://127.0.0.1") for per in (60, 60.0)]
    for limiter in limiters:
        limiter.finish(await limiter.acquire())
    for limiter in limiters:
        assert isinstance(limiter, RedisLimiter)
        await limiter.aclose()
    async with redis_client(redis_url) as client:
        assert len(await client.keys(f"{prefix}:*")) == 1
        assert len(await places(client, prefix)) == 2


async def test_a_place_finished_after_the_limiter_closed_opens_no_connection(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    limiter = make_limiter(RateLimit(2, per=60, redis=RedisLimit(redis_url, prefix=prefix)), "http://h")
    assert isinstance(limiter, RedisLimiter)
    place = await limiter.acquire()
    await limiter.aclose()
    limiter.finish(place)  # a request answered after registry.close(): nothing to send it with
    await asyncio.sleep(0.01)  # (a connection opened here would be reported unclosed by the leak guard)
    async with redis_client(redis_url) as client:
        (held,) = await places(client, prefix)
    assert held[2] > 60  # still counted as in flight, until its lease ends
