"""The six ways of making the same requests that the benchmark compares.

Each strategy is an async context manager that sets up its sessions (counting them in a ``Tally``),
yields one fetch function per "container", and tears everything down on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from ssl import SSLContext

import aiohttp
import httpx

import asynctools

Fetch = Callable[[], Awaitable[bytes]]


@dataclass
class Workload:
    base: str  # scheme://host:port of the upstream
    containers: int
    concurrency: int  # concurrent calls per container in each round
    rounds: int
    ssl: SSLContext | None

    @property
    def url(self) -> str:
        return self.base + "/item"

    @property
    def requests(self) -> int:
        return self.containers * self.concurrency * self.rounds

    @property
    def ssl_arg(self) -> SSLContext | bool:
        return self.ssl if self.ssl is not None else True


@dataclass
class Tally:
    sessions: int = 0  # ClientSessions (or httpx clients) created


async def read(session: aiohttp.ClientSession, w: Workload) -> bytes:
    async with session.get(w.url, ssl=w.ssl_arg) as resp:
        return await resp.read()


class Api(asynctools.AbstractSessionContainer):
    """A container as users write them: one decorated method per API call."""

    def __init__(self, w: Workload, registry: asynctools.SessionRegistry) -> None:
        super().__init__(w.base, registry=registry)
        self.workload = w

    @asynctools.attach_session
    async def fetch(self, session: aiohttp.ClientSession | None = None) -> bytes:
        assert session is not None
        return await read(session, self.workload)


@contextlib.asynccontextmanager
async def handheld(w: Workload, tally: Tally) -> AsyncIterator[list[Fetch]]:
    """One ClientSession created by hand and passed everywhere: the limit."""
    async with aiohttp.ClientSession() as session:
        tally.sessions += 1

        async def fetch() -> bytes:
            return await read(session, w)

        yield [fetch] * w.containers


@contextlib.asynccontextmanager
async def containers(w: Workload, tally: Tally) -> AsyncIterator[list[Fetch]]:
    """asynctools containers entered with async with, all for the same site."""
    async with asynctools.SessionRegistry() as registry, contextlib.AsyncExitStack() as stack:
        apis = [await stack.enter_async_context(Api(w, registry)) for _ in range(w.containers)]
        yield [api.fetch for api in apis]
        tally.sessions += registry.stats().created


@contextlib.asynccontextmanager
async def unattached(w: Workload, tally: Tally) -> AsyncIterator[list[Fetch]]:
    """asynctools containers never entered: each call acquires and releases (a warm registry)."""
    async with asynctools.SessionRegistry() as registry:
        yield [Api(w, registry).fetch for _ in range(w.containers)]
        tally.sessions += registry.stats().created


@contextlib.asynccontextmanager
async def session_per_call(w: Workload, tally: Tally) -> AsyncIterator[list[Fetch]]:
    """A new ClientSession per call: what 0.1.3 users got without async with."""

    async def fetch() -> bytes:
        tally.sessions += 1
        async with aiohttp.ClientSession() as session:
            return await read(session, w)

    yield [fetch] * w.containers


@contextlib.asynccontextmanager
async def session_per_container(w: Workload, tally: Tally) -> AsyncIterator[list[Fetch]]:
    """One ClientSession per container: what 0.1.3 gave with async with."""
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(aiohttp.ClientSession()) for _ in range(w.containers)]
        tally.sessions += len(sessions)

        def fetcher(session: aiohttp.ClientSession) -> Fetch:
            return lambda: read(session, w)

        yield [fetcher(session) for session in sessions]


@contextlib.asynccontextmanager
async def httpx_client(w: Workload, tally: Tally) -> AsyncIterator[list[Fetch]]:
    """One httpx.AsyncClient, what many users pick instead (its default limit is 100 connections too)."""
    # No pool timeout: like aiohttp's connector, queued requests wait for a free connection.
    timeout = httpx.Timeout(60.0, pool=None)
    async with httpx.AsyncClient(verify=w.ssl if w.ssl is not None else True, timeout=timeout) as client:
        tally.sessions += 1

        async def fetch() -> bytes:
            return (await client.get(w.url)).content

        yield [fetch] * w.containers


STRATEGIES: dict[str, Callable[[Workload, Tally], AbstractAsyncContextManager[list[Fetch]]]] = {
    "handheld": handheld,
    "containers": containers,
    "unattached": unattached,
    "session_per_call": session_per_call,
    "session_per_container": session_per_container,
    "httpx": httpx_client,
}
