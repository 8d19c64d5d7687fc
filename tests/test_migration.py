"""aiohttp-asynctools 0.1.3's own test scenarios, run as they were written, against asynctools 1.0.

The scenarios (classes, calls and assertions) are those of 0.1.3's tests/helpers_test.py. Its hooks
(session_hook, set_session_hook, on_start, on_close) are refused in 1.0 with a clear error, tested last.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import pytest

import asynctools.helpers as helpers


class Range(helpers.AbstractSessionContainer):
    def __init__(self) -> None:
        super().__init__(raise_for_status=True)

    @helpers.attach_session
    async def f(self, x: int, session: aiohttp.ClientSession | None = None) -> AsyncGenerator[int, None]:
        for i in range(x):
            await asyncio.sleep(0.2)
            yield i

    @helpers.attach_session
    async def g(self, x: int, session: aiohttp.ClientSession | None = None) -> list[int]:
        await asyncio.sleep(1)
        return list(range(x))

    @helpers.attach_session
    async def h(self, session: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession | None:
        """Documentation"""
        return session

    @helpers.attach_session
    async def kwargsf(
        self, session: aiohttp.ClientSession | None = None, **kwargs: int
    ) -> tuple[aiohttp.ClientSession | None, dict[str, int]]:
        """Documentation"""
        return session, kwargs

    @helpers.attach_named_session("definitely_not_a_session")
    async def named_seesion(
        self, definitely_not_a_session: aiohttp.ClientSession | None = None
    ) -> aiohttp.ClientSession | None:
        """Documentation"""
        return definitely_not_a_session


@pytest.mark.asyncio
async def test_generator() -> None:
    x = 4
    expected = list(range(x))
    async with Range() as async_range:
        async_range_generator = async_range.f(x)
        assert isinstance(async_range_generator, types.AsyncGeneratorType)
        generator_output = [a async for a in async_range_generator]
        assert generator_output == expected


@pytest.mark.asyncio
async def test_coroutine() -> None:
    x = 4
    expected = list(range(x))
    async with Range() as async_range:
        async_range_generator = async_range.g(x)
        assert isinstance(async_range_generator, types.CoroutineType)
        generator_output = [a for a in await async_range_generator]
        assert generator_output == expected


@pytest.mark.asyncio
async def test_session_attached() -> None:
    async with Range() as async_range:
        session = await async_range.h()
    assert isinstance(session, aiohttp.ClientSession)


@pytest.mark.asyncio
async def test_kwargs() -> None:
    kwargs: dict[str, Any] = dict(a=1, b=2, c=3)  # Any: mypy matches **kwargs against session= too
    async with Range() as async_range:
        session, res_kwargs = await async_range.kwargsf(**kwargs)
    assert isinstance(session, aiohttp.ClientSession)
    assert res_kwargs == kwargs


@pytest.mark.asyncio
async def test_named_session_attached() -> None:
    async with Range() as async_range:
        session = await async_range.named_seesion()
    assert isinstance(session, aiohttp.ClientSession)


@pytest.mark.asyncio
async def test_documentation() -> None:
    assert Range.h.__doc__ == "Documentation"


# -- what changed -------------------------------------------------------------------------------------


async def test_a_call_without_async_with_gets_a_session_instead_of_none() -> None:
    assert isinstance(await Range().h(), aiohttp.ClientSession)  # 0.1.3 passed None here


async def test_a_callers_session_is_no_longer_overwritten() -> None:
    async with aiohttp.ClientSession() as mine, Range() as async_range:
        assert await async_range.h(session=mine) is mine  # 0.1.3 replaced it with its own


async def test_start_and_close_session_awaited_as_in_0_1_3() -> None:
    async_range = Range()
    await async_range.start_session()
    assert isinstance(await async_range.h(), aiohttp.ClientSession)
    await async_range.close_session()
    assert async_range.session is None


@pytest.mark.parametrize("name", ["set_session_hook", "on_start", "on_close"])
def test_removed_hooks_say_why_and_what_to_do(name: str) -> None:
    async def hook(*args: object, **kwargs: object) -> None:
        return None

    with pytest.raises(TypeError, match=rf"{name}\(\) was removed in asynctools 1\.0.*ClientSession options"):
        getattr(Range(), name)(hook)


def test_a_session_hook_in_a_subclass_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"session_hook\(\) was removed"):

        class RangeB(helpers.AbstractSessionContainer):
            async def session_hook(self, session: aiohttp.ClientSession) -> aiohttp.ClientSession:
                return session
