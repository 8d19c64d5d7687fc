"""The short paths of entering a container and of a call without one: they keep every guarantee."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, _container, attach_session
from asynctools._idle import IdleSet


class Api(AbstractSessionContainer):
    @attach_session
    async def session_of(self, session: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession:
        assert session is not None
        return session


class FakeClockLoop(asyncio.SelectorEventLoop):
    """A loop whose clock runs 1,000 s ahead of time.monotonic()."""

    def time(self) -> float:
        return super().time() + 1000.0


def test_the_idle_set_keeps_time_on_a_loop_with_a_clock_of_its_own() -> None:
    # asyncio's own loops are read through time.monotonic() directly; any other clock is asked.
    loop = FakeClockLoop()
    try:
        idle: IdleSet[str] = IdleSet(loop, 10, 5.0, lambda _: None)
        idle.add("a")
        assert idle["a"] >= loop.time() - 1.0
        assert idle.drain() == ["a"]
    finally:
        loop.close()


async def test_the_idle_set_is_read_on_the_running_loops_clock() -> None:
    loop = asyncio.get_running_loop()
    idle: IdleSet[str] = IdleSet(loop, 10, 5.0, lambda _: None)
    before = loop.time()
    idle.add("a")
    assert before <= idle["a"] <= loop.time()
    idle.drain()


async def test_a_container_entered_again_after_its_last_exit_attaches_afresh(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(upstream.url(), registry=registry)
    for _ in range(3):
        async with api:
            async with api:  # nested: the same session, one lease
                session = await api.session_of()
                assert api.session is session
                assert registry.stats().in_use == 1
            assert api.session is session
        assert api.session is None
        assert registry.stats().in_use == 0
    async with api:
        await registry.close()  # the registry closes it under the attachment
        async with api:  # a deeper entry replaces the closed session, counted once
            assert api.session is not None and not api.session.closed
            assert api.session is not session
    assert api.session is None


async def test_a_session_closed_behind_our_back_between_calls_is_replaced(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(upstream.url(), registry=registry)
    first = await api.session_of()
    await asyncio.sleep(0)  # idle now
    await first.close()
    second = await api.session_of()  # a call without a session never gets a closed one
    assert second is not first and not second.closed
    async with api:
        await api.session.close()  # type: ignore[union-attr]
        third = await Api(upstream.url(), registry=registry).session_of()  # the same key
        assert third is not second and not third.closed
    assert registry.stats().in_use == 0
    assert [s.closed for s in registry.stats().sessions] == [False]  # the closed one was not kept idle


async def test_leases_are_given_back_once_on_every_path(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0)  # every release to zero closes: a double one would show
    api = Api(upstream.url(), registry=registry)
    sessions = [await api.session_of() for _ in range(3)]
    assert len(set(sessions)) == 3 and all(s.closed for s in sessions)
    async with api:
        await api.session_of()
        await api.session_of(session=None)
    assert registry.stats().in_use == 0 and registry.stats().created == 4
    await registry.close()


async def test_a_base_url_in_use_is_worked_out_once_however_many_came_before(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a base URL alone gives is kept for the base URLs used last: a long-running program that has
    # seen thousands of sites still works a new one out once, not once per container.
    worked_out: list[object] = []

    def counted(raw_url: object, *args: Any) -> Any:
        worked_out.append(raw_url)
        return site(raw_url, *args)

    site = _container._site
    monkeypatch.setattr(_container, "_site", counted)
    registry = SessionRegistry()
    for port in range(10_000, 15_000):
        Api(f"http://site-{port}.example", registry=registry)
    worked_out.clear()
    apis = [Api(upstream.url(), registry=registry) for _ in range(3)]
    assert worked_out == [upstream.url()]
    async with apis[0], apis[1]:  # one key: one session
        assert apis[0].session is apis[1].session is not None
    for _ in range(2):  # a bad one is refused every time, never kept
        with pytest.raises(ValueError, match="no host"):
            Api("/relative", registry=registry)
    assert registry.stats().created == 1
    await registry.close()
