"""Checked by mypy --strict in test_static.py: decorated methods keep their signatures."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from aiohttp import ClientResponse, ClientSession
from typing_extensions import assert_type
from yarl import URL

from asynctools import AbstractSessionContainer, SessionRegistry, attach_named_session, attach_session


class Api(AbstractSessionContainer):
    @attach_session
    async def text(self, path: str, *, session: ClientSession | None = None) -> str:
        assert session is not None
        async with session.get(path) as resp:
            return await resp.text()

    @attach_named_session("http")
    async def status(self, path: str, http: ClientSession | None = None) -> int:
        assert http is not None
        async with http.get(path) as resp:
            return resp.status

    @attach_session
    async def lines(self, session: ClientSession | None = None) -> AsyncGenerator[bytes, None]:
        assert session is not None
        async with session.get("/") as resp:
            async for line in resp.content:
                yield line

    @attach_session
    async def names(self, count: int, session: ClientSession | None = None) -> AsyncIterator[str]:
        assert session is not None
        for number in range(count):
            yield str(number)

    @attach_named_session("http")
    async def pages(self, http: ClientSession | None = None) -> AsyncIterator[int]:
        assert http is not None
        yield 1


class GitHub(AbstractSessionContainer, base_url="https://api.github.com"):
    pass


class Weather(AbstractSessionContainer):
    base_url = URL("https://api.weather.example")


def base_urls(api: Api) -> None:
    assert_type(api.base_url, URL | None)
    assert_type(GitHub().base_url, URL | None)
    _: URL | None = Weather().base_url  # (yarl 1.17 types URL() as Any: no assert_type here)
    GitHub(base_url=URL("https://github.example"))
    GitHub(base_url=3)  # type: ignore[arg-type]


class Old(AbstractSessionContainer):
    base_url = "https://api.example.com"  # type: ignore[assignment]


async def use(registry: SessionRegistry) -> None:
    api = Api("https://api.example.com", registry=registry)
    assert_type(await api.text("/a"), str)
    assert_type(await api.status("/a"), int)
    assert_type(api.lines(), AsyncGenerator[bytes, None])
    assert_type(api.names(3), AsyncIterator[str])
    assert_type(api.pages(), AsyncIterator[int])
    api.names("3")  # type: ignore[arg-type]
    await api.text(1)  # type: ignore[arg-type]
    await api.status("/a", bogus=1)  # type: ignore[call-arg]
    async with Api() as entered:
        assert_type(entered, Api)
    session = await registry.acquire("https://api.example.com", raise_for_status=True)
    assert_type(session, ClientSession)
    await registry.release(session)
    async with registry.session() as leased:
        assert_type(leased, ClientSession)
    async with api.get("/x") as resp:
        assert_type(resp, ClientResponse)
    assert_type(await api.post("/x"), ClientResponse)
    assert_type(registry.stats().created, int)
