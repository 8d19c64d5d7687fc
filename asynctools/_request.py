"""Requests made by a container that holds no session: acquired for the request, released with it."""

from __future__ import annotations

from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, Protocol

from aiohttp import ClientResponse
from yarl import URL

from ._lease import Lease

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

    __slots__ = ("_kwargs", "_lease_for", "_method", "_response", "_url")

    def __init__(
        self, lease_for: Callable[[], Lease], method: str, url: URL | str, kwargs: dict[str, Any]
    ) -> None:
        self._lease_for = lease_for
        self._method = method
        self._url = url
        self._kwargs = kwargs
        self._response: ClientResponse | None = None

    def __await__(self) -> Generator[Any, None, ClientResponse]:
        return self._send().__await__()

    async def _send(self) -> ClientResponse:
        lease = self._lease_for()
        session = lease.session
        assert session is not None
        try:
            response = await session.request(self._method, self._url, **self._kwargs)
        except BaseException:
            await lease.release_and_wait()
            raise
        connection = response.connection
        if connection is None:  # the body was already complete: nothing holds the pool any more
            await lease.release_and_wait()
        else:
            # Called by aiohttp as the connection goes back to the pool: after the body was read, on
            # release(), or from the response's finaliser when it is dropped unread. A close it causes
            # is a task the pool tracks, so the connector finishes returning the connection first.
            connection.add_callback(lambda: _release(lease))
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


def _release(lease: Lease) -> None:
    if not lease.released:  # aiohttp may report the same connection's release twice
        lease.release()
