"""One ledger: a session's users are counted in one place, whatever path releases it.

Releasing more times than acquired is a ``ValueError``, always (before or after ``registry.close()``,
after the loop's shutdown, from a generator finalised late, from another thread's loop), and the refused
release changes no count in ``stats()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from asynctools import AbstractSessionContainer, RegistryStats, SessionRegistry

URL = "http://ledger.example"

# open, in_use, idle, created, acquired and each session's users
Counts = tuple[int, int, int, int, int, tuple[int, ...]]


def counts(stats: RegistryStats) -> Counts:
    return (
        stats.open,
        stats.in_use,
        stats.idle,
        stats.created,
        stats.acquired,
        tuple(s.users for s in stats.sessions),
    )


async def releases_refused(registry: SessionRegistry, *releases: Callable[[], Awaitable[None]]) -> int:
    """Run each release (a zero-argument coroutine function); return how many raised ValueError."""
    refused = 0
    for release in releases:
        try:
            await release()
        except ValueError:
            refused += 1
    return refused


async def test_a_release_too_many_raises_and_changes_no_count() -> None:
    registry = SessionRegistry()
    session = await registry.acquire(URL)
    await registry.release(session)
    before = counts(registry.stats())
    with pytest.raises(ValueError, match="more times than it was acquired"):
        await registry.release(session)
    assert counts(registry.stats()) == before
    await registry.close()


async def test_after_close_a_second_release_of_the_same_session_raises() -> None:
    registry = SessionRegistry()
    session = await registry.acquire(URL)
    await registry.close()
    await registry.release(session)  # documented: a holder may release after close()
    before = counts(registry.stats())
    with pytest.raises(ValueError):
        await registry.release(session)
    assert counts(registry.stats()) == before


async def test_after_close_a_lease_and_a_hand_release_of_its_session_count_one_user_once() -> None:
    registry = SessionRegistry()
    lease = registry.session(URL)
    session = await lease.__aenter__()
    await registry.close()
    before = counts(registry.stats())

    async def by_hand() -> None:
        await registry.release(session)

    async def lease_exit() -> None:
        await lease.__aexit__(None, None, None)

    assert await releases_refused(registry, by_hand, lease_exit) == 1, "two releases of one acquisition"
    assert counts(registry.stats()) == before


async def test_after_close_a_container_and_a_hand_release_of_its_session_count_one_user_once() -> None:
    registry = SessionRegistry()
    api = AbstractSessionContainer(URL, registry=registry)
    await api.start_session()
    session = api.session
    assert session is not None
    await registry.close()

    async def by_hand() -> None:
        await registry.release(session)

    async def close_session() -> None:
        await api.close_session()

    assert await releases_refused(registry, by_hand, close_session) == 1, "two releases of one acquisition"


async def test_before_close_a_lease_and_a_hand_release_of_its_session_count_one_user_once() -> None:
    registry = SessionRegistry()
    lease = registry.session(URL)
    session = await lease.__aenter__()

    async def by_hand() -> None:
        await registry.release(session)

    async def lease_exit() -> None:
        await lease.__aexit__(None, None, None)

    assert await releases_refused(registry, by_hand, lease_exit) == 1
    assert registry.stats().in_use == 0
    await registry.close()


async def test_a_release_on_another_threads_loop_is_refused_and_counts_nothing_there_or_here() -> None:
    registry = SessionRegistry()
    session = await registry.acquire(URL)
    before = counts(registry.stats())

    async def elsewhere() -> tuple[str, Counts]:
        try:
            await registry.release(session)
        except ValueError:
            outcome = "refused"
        else:
            outcome = "accepted"
        return outcome, counts(registry.stats())

    outcome, counts_there = await asyncio.to_thread(asyncio.run, elsewhere())
    assert outcome == "refused"
    assert counts_there == (0, 0, 0, 0, 0, ())
    assert counts(registry.stats()) == before
    await registry.release(session)
    with pytest.raises(ValueError):
        await registry.release(session)
    await registry.close()


def test_a_generator_finalised_after_the_loops_shutdown_cannot_release_twice() -> None:
    registry = SessionRegistry()
    outcomes: list[str] = []
    kept: list[object] = []

    async def holder() -> AsyncIterator[aiohttp.ClientSession]:
        async with registry.session(URL) as session:
            try:
                yield session
            finally:
                # The user's bug: releasing the lease's session by hand too. One of the two must fail.
                try:
                    await registry.release(session)
                    outcomes.append("hand release accepted")
                except ValueError:
                    outcomes.append("hand release refused")

    async def outer() -> AsyncIterator[None]:
        try:
            async for _ in holder():
                yield
        except ValueError:
            outcomes.append("lease exit refused")
            raise

    async def main() -> None:
        gen = outer()
        await gen.__anext__()
        kept.append(gen)  # paused at exit: finalised by asyncio.run() after the registry's shutdown

    asyncio.run(main())  # a ValueError in the finalised generator goes to the loop's handler
    kept.clear()
    assert sorted(outcomes) in (
        ["hand release accepted", "lease exit refused"],
        ["hand release refused"],
    ), outcomes


async def test_a_session_released_by_a_container_after_close_cannot_be_released_again() -> None:
    registry = SessionRegistry()
    async with AbstractSessionContainer(URL, registry=registry) as api:
        session = api.session
        assert isinstance(session, aiohttp.ClientSession)
        await registry.close()
    before = counts(registry.stats())
    with pytest.raises(ValueError):
        await registry.release(session)
    assert counts(registry.stats()) == before
