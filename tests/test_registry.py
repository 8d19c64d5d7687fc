"""SessionRegistry: sharing, counting, lingering, closing, and refusing bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from conftest import Upstream

import asynctools
from asynctools import SessionRegistry
from asynctools._idle import IdleSet

if TYPE_CHECKING:
    from pytest_aiohttp import AiohttpClient


async def wait_until(condition: Callable[[], bool], ticks: int = 20) -> None:
    """Let the loop run until *condition* holds (a bounded number of ticks, no wall-clock time)."""
    for _ in range(ticks):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"still false after {ticks} ticks")


def counts(registry: SessionRegistry) -> tuple[int, int, int, int, int]:
    s = registry.stats()
    return (s.open, s.in_use, s.idle, s.created, s.acquired)


async def test_one_session_per_key_counted_per_user(registry: SessionRegistry, upstream: Upstream) -> None:
    a = await registry.acquire(upstream.url("/x"))
    b = await registry.acquire(upstream.url("/y"))
    other = await registry.acquire(upstream.url(), raise_for_status=True)
    assert isinstance(a, aiohttp.ClientSession)
    assert a is b
    assert other is not a
    stats = registry.stats()
    assert (stats.open, stats.in_use, stats.idle, stats.created, stats.acquired) == (2, 2, 0, 2, 3)
    assert sorted(s.users for s in stats.sessions) == [1, 2]
    assert {s.origin for s in stats.sessions} == {upstream.origin}
    for session in (a, b, other):
        await registry.release(session)
    assert counts(registry) == (2, 0, 2, 2, 3)


async def test_a_released_session_lingers_warm_and_comes_back(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    session = await registry.acquire(upstream.url())
    async with session.get(upstream.url("/echo")) as resp:
        await resp.read()
    await registry.release(session)
    assert not session.closed
    again = await registry.acquire(upstream.url())
    async with again.get(upstream.url("/echo")) as resp:
        await resp.read()
    await registry.release(again)
    assert again is session
    assert registry.stats().created == 1
    assert len(upstream.peers) == 1  # the second request reused the first connection


async def test_idle_sessions_close_after_idle_timeout() -> None:
    registry = SessionRegistry(idle_timeout=0.05)
    session = await registry.acquire("http://a.example")
    await registry.release(session)
    assert not session.closed
    await asyncio.sleep(0.2)  # the expiry timer (due at +0.05 s) fires before this sleep ends
    assert session.closed
    assert counts(registry) == (0, 0, 0, 1, 1)
    again = await registry.acquire("http://a.example")
    assert again is not session
    await registry.release(again)
    await registry.close()


async def until_closed(session: aiohttp.ClientSession) -> float:
    """Poll the loop until *session* is closed; return the loop time it was seen closed.

    Bounded (a session that never closes fails the test after 10 s of loop time) but not timed.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 10
    while not session.closed:
        assert loop.time() < give_up, f"{session!r} was never closed"
        await asyncio.sleep(0.01)
    return loop.time()


async def test_expiry_reschedules_for_sessions_that_went_idle_later() -> None:
    loop = asyncio.get_running_loop()
    registry = SessionRegistry(idle_timeout=0.1)
    first = await registry.acquire("http://a.example")
    second = await registry.acquire("http://b.example")
    await registry.release(first)
    await asyncio.sleep(0.06)
    await registry.release(second)
    second_idle = loop.time()  # it goes idle at the end of this tick: it is due at second_idle + 0.1 or later
    await until_closed(first)
    # On a loaded machine the check may come late enough for second to be due too; then it proves nothing.
    assert not second.closed or loop.time() >= second_idle + 0.1
    assert await until_closed(second) >= second_idle + 0.1  # the timer was set again, for second's time
    await registry.close()


async def test_idle_timeout_zero_closes_at_once() -> None:
    registry = SessionRegistry(idle_timeout=0)
    session = await registry.acquire()
    await registry.release(session)
    assert session.closed
    assert counts(registry) == (0, 0, 0, 1, 1)
    await registry.close()


async def test_max_idle_closes_the_least_recently_used() -> None:
    registry = SessionRegistry(max_idle=2)
    sessions = [await registry.acquire(f"http://h{i}.example") for i in range(3)]
    for session in sessions:
        await registry.release(session)
        await asyncio.sleep(0)  # each goes idle at the end of its tick, in this order
    assert registry.stats().idle == 2
    await wait_until(lambda: sessions[0].closed)
    assert [s.closed for s in sessions] == [True, False, False]
    await registry.close()
    assert all(s.closed for s in sessions)


async def test_close_closes_each_idle_session_once(upstream: Upstream) -> None:
    # close() must close each session exactly once: an idle session is drained from the idle set, not
    # handed to its drop callback (up to cachetools 7, the old idle cache's clear() did that).
    registry = SessionRegistry()
    in_use = await registry.acquire(upstream.url())
    idle = [await registry.acquire(f"http://h{i}.example") for i in range(2)]
    for session in idle:
        await registry.release(session)
    await asyncio.sleep(0)  # they go idle at the end of the tick
    assert counts(registry)[:3] == (3, 1, 2)
    pool = registry._pools[asyncio.get_running_loop()]
    closing = pool.close_all()
    assert len(closing) == 1  # the shared connector's, which closes the three sessions with it
    await pool.close()
    assert all(s.closed for s in (in_use, *idle))
    await registry.release(in_use)


async def test_the_idle_set_evicts_the_oldest_expires_on_time_and_drains_without_dropping() -> None:
    loop = asyncio.get_running_loop()
    dropped: list[str] = []
    idle: IdleSet[str] = IdleSet(loop, 2, 1000.0, dropped.append)
    idle.add("a")
    idle.add("b")
    idle.pop("a", None)  # in use again: not idle any more
    idle.add("a")  # idle again, now the youngest
    idle.add("c")  # over two: the one idle longest ("b") goes
    assert dropped == ["b"] and len(idle) == 2
    idle.expire(loop.time() + 999)
    assert dropped == ["b"]
    idle.expire(loop.time() + 1000)  # idle for the whole ttl: both go, oldest first
    assert dropped == ["b", "a", "c"] and len(idle) == 0
    idle.add("d")
    assert idle.drain() == ["d"] and dropped == ["b", "a", "c"]  # drained, not dropped, timer gone


async def test_max_idle_zero_keeps_nothing_idle() -> None:
    registry = SessionRegistry(max_idle=0)
    session = await registry.acquire()
    await registry.release(session)
    assert session.closed
    await registry.close()


async def test_release_of_a_stranger_is_refused_and_changes_nothing(registry: SessionRegistry) -> None:
    mine = await registry.acquire()
    before = registry.stats()
    async with aiohttp.ClientSession() as stranger:
        with pytest.raises(ValueError, match="not handed out by this registry"):
            await registry.release(stranger)
    with pytest.raises(TypeError, match="takes a ClientSession"):
        await registry.release("session")  # type: ignore[arg-type]
    assert registry.stats() == before
    await registry.release(mine)


async def test_release_on_a_registry_that_never_served_this_loop(registry: SessionRegistry) -> None:
    other = SessionRegistry()
    session = await registry.acquire()
    with pytest.raises(ValueError, match="not handed out by this registry"):
        await other.release(session)
    await registry.release(session)


async def test_releasing_too_often_is_refused_and_changes_nothing() -> None:
    for registry in (SessionRegistry(), SessionRegistry(idle_timeout=0)):
        session = await registry.acquire()
        await registry.release(session)
        before = registry.stats()
        with pytest.raises(ValueError, match="released more times than it was acquired"):
            await registry.release(session)
        assert registry.stats() == before
        await registry.close()


async def test_session_context_manager(registry: SessionRegistry, upstream: Upstream) -> None:
    async with registry.session(upstream.url(), raise_for_status=True) as session:
        assert registry.stats().in_use == 1
        with pytest.raises(aiohttp.ClientResponseError):
            await session.get(upstream.url("/status/500"))
    assert registry.stats().in_use == 0
    lease = registry.session()
    async with lease:
        with pytest.raises(RuntimeError, match="already entered"):
            await lease.__aenter__()


async def test_bad_arguments_raise_before_anything_is_created(registry: SessionRegistry) -> None:
    with pytest.raises(ValueError, match="scheme 'ftp'"):
        await registry.acquire("ftp://files.example")
    with pytest.raises(TypeError, match="'bogus'"):
        await registry.acquire("http://a.example", bogus=1)
    with pytest.raises(TypeError, match="'bogus'"):
        registry.session(bogus=1)
    assert counts(registry) == (0, 0, 0, 0, 0)


async def test_aiohttp_refusing_a_value_counts_nothing(registry: SessionRegistry) -> None:
    with pytest.raises(ValueError):
        await registry.acquire(base_url="not a base url")
    assert counts(registry) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"idle_timeout": -1}, ValueError, "idle_timeout must be a finite number"),
        ({"idle_timeout": float("inf")}, ValueError, "idle_timeout must be a finite number"),
        ({"idle_timeout": "5"}, TypeError, "idle_timeout must be a number"),
        ({"idle_timeout": True}, TypeError, "idle_timeout must be a number"),
        ({"max_idle": -1}, ValueError, "max_idle must be >= 0"),
        ({"max_idle": 2.5}, TypeError, "max_idle must be an int"),
    ],
)
def test_bad_registry_options(kwargs: dict[str, Any], exc: type[Exception], words: str) -> None:
    with pytest.raises(exc, match=words):
        SessionRegistry(**kwargs)


def test_construction_needs_no_loop() -> None:
    registry = SessionRegistry(idle_timeout=1, max_idle=3)
    assert (registry.idle_timeout, registry.max_idle) == (1.0, 3)
    assert "idle_timeout=1.0" in repr(registry)


def test_stats_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="call it from a coroutine"):
        SessionRegistry().stats()


async def test_close_closes_everything_and_the_registry_stays_usable(upstream: Upstream) -> None:
    registry = SessionRegistry()
    in_use = await registry.acquire(upstream.url())
    idle = await registry.acquire(upstream.url(), raise_for_status=True)
    await registry.release(idle)
    await registry.close()
    assert in_use.closed and idle.closed
    assert counts(registry) == (0, 0, 0, 0, 0)
    await registry.release(in_use)  # its user may still release it, without error
    fresh = await registry.acquire(upstream.url())
    assert fresh is not in_use and not fresh.closed
    await registry.release(fresh)
    async with registry:
        pass
    assert fresh.closed
    assert registry._pools == {}


async def test_close_with_a_user_still_holding_a_session(upstream: Upstream) -> None:
    registry = SessionRegistry()
    held = await registry.acquire(upstream.url())
    twice = await registry.acquire(upstream.url())
    await registry.close()
    assert held.closed
    assert registry.stats() == asynctools.RegistryStats(0, 0, 0, 0, 0, ())
    assert registry._pools == {}  # nothing is pending on the loop, though a user still holds a session
    again = await registry.acquire(upstream.url())
    assert again is not held
    await registry.release(held)
    await registry.release(twice)
    with pytest.raises(ValueError, match="more times than it was acquired"):
        await registry.release(held)
    await registry.release(again)
    await registry.close()


async def test_a_session_closed_behind_our_back_is_never_handed_out_again(registry: SessionRegistry) -> None:
    in_use = await registry.acquire()
    await in_use.close()
    fresh = await registry.acquire()
    assert fresh is not in_use and not fresh.closed
    await registry.release(in_use)  # the old user can still release it
    await registry.release(fresh)
    await asyncio.sleep(0)
    await fresh.close()  # now while idle
    newest = await registry.acquire()
    assert newest is not fresh and not newest.closed
    await registry.release(newest)
    await newest.close()  # closed before it even went idle
    replacement = await registry.acquire()
    assert replacement is not newest and not replacement.closed
    assert registry.stats().open == 1
    assert [s.users for s in registry.stats().sessions] == [1]
    await registry.release(replacement)


async def test_a_session_closed_in_the_tick_its_last_user_left_is_replaced(registry: SessionRegistry) -> None:
    # With the user's own connector, ClientSession.close() never yields to the loop: the session is
    # closed before the end of the tick in which it would have gone idle.
    connector = aiohttp.TCPConnector()
    session = await registry.acquire(connector=connector)
    await registry.release(session)
    await session.close()
    replacement = await registry.acquire(connector=connector)
    assert replacement is not session and not replacement.closed
    assert [(s.users, s.closed) for s in registry.stats().sessions] == [(1, False)]  # the old one is gone
    await registry.release(replacement)
    await registry.close()
    assert not connector.closed  # the user's connector is the user's to close
    await connector.close()


async def test_a_session_released_closed_is_not_kept_idle(registry: SessionRegistry) -> None:
    session = await registry.acquire()
    await session.close()
    await registry.release(session)
    assert registry.stats().sessions == ()


async def test_concurrent_first_acquires_create_one_session(registry: SessionRegistry) -> None:
    sessions = await asyncio.gather(*(registry.acquire("http://a.example") for _ in range(1000)))
    assert len({id(s) for s in sessions}) == 1
    assert registry.stats().created == 1
    assert registry.stats().sessions[0].users == 1000
    await asyncio.gather(*(registry.release(s) for s in sessions))
    assert registry.stats().in_use == 0


async def test_release_to_zero_racing_an_acquire_in_the_same_tick(registry: SessionRegistry) -> None:
    session = await registry.acquire()
    _, again = await asyncio.gather(registry.release(session), registry.acquire())
    assert again is session and not session.closed
    await asyncio.sleep(0)  # the settle at the end of the tick must not idle a session in use
    assert registry.stats().in_use == 1
    await registry.release(again)


async def test_cleanup_ctx_closes_the_apps_sessions(
    aiohttp_client: AiohttpClient, upstream: Upstream
) -> None:
    from aiohttp import web

    registry = SessionRegistry()

    async def handler(request: web.Request) -> web.Response:
        async with registry.session(upstream.url()) as session, session.get(upstream.url("/echo")) as resp:
            return web.Response(text=str(resp.status))

    app = web.Application()
    app.router.add_get("/", handler)
    app.cleanup_ctx.append(registry.cleanup_ctx)
    client = await aiohttp_client(app)
    for _ in range(3):
        assert await (await client.get("/")).text() == "200"
    assert registry.stats().open == 1
    assert registry.stats().created == 1
    await client.close()
    assert registry.stats().open == 0


async def test_default_registry_is_a_registry() -> None:
    assert isinstance(asynctools.default_registry, SessionRegistry)
