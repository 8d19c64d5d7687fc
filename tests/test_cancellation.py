"""Cancellation at every await and races: CancelledError propagates, counts return to zero, nothing hangs."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session


class Api(AbstractSessionContainer):
    @attach_session
    async def wait(self, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/wait")) as resp:
            return await resp.text()


# aiohttp before 3.11 fails a request whose connector is closed under it with an internal assertion.
OLD_AIOHTTP = tuple(int(part) for part in aiohttp.__version__.split(".")[:2]) < (3, 11)
AIOHTTP_ERRORS = (aiohttp.ClientError, AssertionError) if OLD_AIOHTTP else (aiohttp.ClientError,)


def in_use(registry: SessionRegistry) -> int:
    return registry.stats().in_use


async def cancel_and_check(task: asyncio.Task[object], registry: SessionRegistry) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert in_use(registry) == 0


async def test_cancelled_inside_async_with_container(registry: SessionRegistry, upstream: Upstream) -> None:
    inside = asyncio.Event()

    async def body() -> None:
        async with Api(upstream.url(), registry=registry):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(body())
    await inside.wait()
    assert in_use(registry) == 1
    await cancel_and_check(task, registry)


@pytest.mark.parametrize("attached", [True, False])
async def test_cancelled_while_a_decorated_call_waits_on_the_server(
    registry: SessionRegistry, upstream: Upstream, attached: bool
) -> None:
    api = Api(upstream.url(), registry=registry)
    if attached:
        api.start_session()
    upstream.release.clear()
    task = asyncio.ensure_future(api.wait())
    await upstream.waiting.wait()
    if attached:
        api.close_session()
    await cancel_and_check(task, registry)


async def test_cancelled_while_an_unattached_helper_waits(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(upstream.url(), registry=registry)
    task = asyncio.ensure_future(api.get("/wait"))
    await upstream.waiting.wait()
    assert in_use(registry) == 1
    await cancel_and_check(task, registry)


async def test_cancelled_before_acquire_runs_acquires_nothing(registry: SessionRegistry) -> None:
    task = asyncio.ensure_future(registry.acquire("http://a.example"))
    await cancel_and_check(task, registry)
    assert registry.stats().acquired == 0


async def test_cancelling_close_still_closes_every_session(upstream: Upstream) -> None:
    registry = SessionRegistry()
    sessions = [await registry.acquire(upstream.url(), headers={"n": str(i)}) for i in range(5)]
    for session in sessions:
        await registry.release(session)
    closing = asyncio.ensure_future(registry.close())
    await asyncio.sleep(0)  # let close() start: it is now waiting for the sessions to close
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await registry.close()  # waits for nothing left; the sessions closed anyway
    assert all(session.closed for session in sessions)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")
async def test_asyncio_timeout_around_a_decorated_call(registry: SessionRegistry, upstream: Upstream) -> None:
    api = Api(upstream.url(), registry=registry)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # type: ignore[attr-defined,unused-ignore]
            await api.wait()
    assert in_use(registry) == 0


async def test_wait_for_around_a_decorated_call(registry: SessionRegistry, upstream: Upstream) -> None:
    api = Api(upstream.url(), registry=registry)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(api.wait(), 0.05)
    assert in_use(registry) == 0


async def test_close_while_calls_are_in_flight(upstream: Upstream) -> None:
    registry = SessionRegistry()
    api = Api(upstream.url(), registry=registry)
    calls = [asyncio.ensure_future(api.wait()) for _ in range(20)]
    await upstream.waiting.wait()
    await registry.close()
    upstream.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:  # each either completed or failed with aiohttp's own error
        assert result == "released" or isinstance(result, AIOHTTP_ERRORS), result
    assert any(isinstance(result, AIOHTTP_ERRORS) for result in results)
    assert in_use(registry) == 0 and registry.stats().open == 0
    assert await api.wait() == "released"  # the registry serves new calls with a fresh session
    await registry.close()


async def test_a_thousand_concurrent_calls_on_one_unattached_instance(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(upstream.url(), registry=registry)
    upstream.release.set()
    assert await asyncio.gather(*(api.wait() for _ in range(1000))) == ["released"] * 1000
    assert registry.stats().created == 1 and in_use(registry) == 0
