"""A subclass that forgets ``super().__init__()`` gets the helpful ``TypeError`` from every entry point.

``async with``, ``start_session()``, ``close_session()``, the request helpers and decorated coroutine and
async generator methods all raise ``TypeError`` mentioning ``super().__init__()``, never an
``AttributeError`` on a private name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from asynctools import AbstractSessionContainer, attach_session


class Forgetful(AbstractSessionContainer, base_url="http://forgetful.example"):
    def __init__(self, token: str) -> None:  # no super().__init__()
        self.token = token

    @attach_session
    async def call(self, session: aiohttp.ClientSession | None = None) -> str:
        return "called"

    @attach_session
    async def lines(self, session: aiohttp.ClientSession | None = None) -> AsyncIterator[str]:
        yield "line"


async def enter(c: Forgetful) -> None:
    async with c:
        pass


async def start(c: Forgetful) -> None:
    await c.start_session()


async def close(c: Forgetful) -> None:
    await c.close_session()


async def get(c: Forgetful) -> None:
    async with c.get("/x"):
        pass


async def awaited_get(c: Forgetful) -> None:
    await c.get("/x")


async def post(c: Forgetful) -> None:
    async with c.post("/x", data=b"x"):
        pass


async def request(c: Forgetful) -> None:
    async with c.request("PUT", "/x"):
        pass


async def call(c: Forgetful) -> None:
    await c.call()


async def iterate(c: Forgetful) -> None:
    async for _ in c.lines():
        pass


ENTRY_POINTS: dict[str, Callable[[Forgetful], Awaitable[Any]]] = {
    "async with": enter,
    "start_session()": start,
    "close_session()": close,
    "get()": get,
    "await get()": awaited_get,
    "post()": post,
    "request()": request,
    "decorated coroutine": call,
    "decorated async generator": iterate,
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_every_entry_point_raises_the_helpful_type_error(entry: str) -> None:
    with pytest.raises(TypeError, match=r"super\(\)\.__init__\(\)"):
        await ENTRY_POINTS[entry](Forgetful("t"))


def test_start_session_raises_the_helpful_type_error_even_as_a_plain_call() -> None:
    # Outside a loop start_session() would say it needs one; inside, a plain call must not get further.
    async def main() -> None:
        with pytest.raises(TypeError, match=r"super\(\)\.__init__\(\)"):
            Forgetful("t").start_session()

    asyncio.run(main())


def test_repr_and_session_still_work_on_a_forgetful_container() -> None:
    c = Forgetful("t")
    assert "Forgetful" in repr(c)
    assert c.session is None
