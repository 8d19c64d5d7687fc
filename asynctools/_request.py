"""Requests made by a container that holds no session: acquired for the request, released with it."""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Protocol

from aiohttp import ClientResponse, ClientSession
from yarl import URL

from ._keys import SessionKey
from ._pool import LoopPool
from ._registry import SessionRegistry

__all__ = ("PooledRequest", "ResponseContext")


class ResponseContext(Protocol):
    """What the request helpers return: await it for the response, or use it with ``async with``."""

    def __await__(self) -> Generator[Any, None, ClientResponse]: ...

    async def __aenter__(self) -> ClientResponse: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class PooledRequest:
    """A request that acquires a session when sent and releases it when the response is released.

    Behaves like the object ``ClientSession.request()`` returns. The session is held until the response
    gives its connection back (body read, ``release()``, leaving ``async with``), so a registry with
    ``idle_timeout=0`` does not close the pool under a body still being read.
    """

    __slots__ = ("_key", "_kwargs", "_method", "_registry", "_response", "_url")

    def __init__(
        self, registry: SessionRegistry, key: SessionKey, method: str, url: URL | str, kwargs: dict[str, Any]
    ) -> None:
        self._registry = registry
        self._key = key
        self._method = method
        self._url = url
        self._kwargs = kwargs
        self._response: ClientResponse | None = None

    def __await__(self) -> Generator[Any, None, ClientResponse]:
        return self._send().__await__()

    async def _send(self) -> ClientResponse:
        pool = self._registry._pool()
        session = pool.acquire(self._key)
        try:
            response = await session.request(self._method, self._url, **self._kwargs)
        except BaseException:
            await pool.release_and_wait(session)
            raise
        connection = response.connection
        if connection is None:  # the body was already complete: nothing holds the pool any more
            await pool.release_and_wait(session)
        else:
            connection.add_callback(lambda: _release_soon(pool, session))
        return response

    async def __aenter__(self) -> ClientResponse:
        self._response = await self._send()
        return self._response

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._response is not None
        # As aiohttp's own request context manager does on exit.
        self._response.release()
        await self._response.wait_for_close()


def _release_soon(pool: LoopPool, session: ClientSession) -> None:
    # Called synchronously by aiohttp while it releases the connection; the close, if any, is a task
    # the pool tracks, so the connector finishes returning the connection before it is closed.
    pool.release(session)
