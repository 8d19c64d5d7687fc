"""Rate limits shared through a real redis-server (started by the fixture), and Redis being unreachable."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from redis_server import free_port, redis_server_url
from test_policy import Recorder, serve
from yarl import URL

from asynctools._policy import RateLimit, RedisLimit, RedisLimitError, SitePolicy, SiteState, site_middleware


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
    async with aiohttp.ClientSession(middlewares=[site_middleware(lambda _: state)]) as session:
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
        async with aiohttp.ClientSession(middlewares=[site_middleware(lambda _: state)]) as session:
            yield session, state
    finally:
        await state.aclose()


async def _get(session: aiohttp.ClientSession, url: URL) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status
