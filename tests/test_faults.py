"""Faulty servers (raw asyncio, on loopback): each call fails with aiohttp's own error, and nothing sticks.

After every fault the shared session serves the next call to a healthy server, its connector holds no
acquired connection, and the registry counts no user.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    writer.transport.abort()


async def close_without_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()
    writer.close()


async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little")
    await writer.drain()
    writer.close()


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    await asyncio.Event().wait()


async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            await read_head(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Behaviour], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[None]] = set()

    async def start(behaviour: Behaviour) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await behaviour(reader, writer)
            except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    yield start
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


class Client(AbstractSessionContainer):
    @attach_session
    async def fetch(self, url: str, session: aiohttp.ClientSession | None = None) -> bytes:
        assert session is not None
        async with session.get(url) as resp:
            return await resp.read()


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (reset, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)),
        (close_without_answer, aiohttp.ServerDisconnectedError),
        (garbage, aiohttp.ClientResponseError),
        (truncated, aiohttp.ClientPayloadError),
        (hang, asyncio.TimeoutError),
    ],
)
@pytest.mark.parametrize("attached", [True, False])
async def test_a_fault_fails_the_call_and_leaves_the_session_healthy(
    serve: Callable[[Behaviour], Awaitable[str]],
    behaviour: Behaviour,
    error: type[BaseException] | tuple[type[BaseException], ...],
    attached: bool,
) -> None:
    registry = SessionRegistry()
    faulty, good = await serve(behaviour), await serve(healthy)
    # One key for both servers (no base URL): the session that met the fault serves the next call.
    client = Client(registry=registry, timeout=aiohttp.ClientTimeout(total=0.3))
    if attached:
        await client.start_session()
    with pytest.raises(error):
        await client.fetch(faulty)
    assert await client.fetch(good) == b"ok"
    stats = registry.stats()
    assert stats.created == 1
    (session,) = [s for s in registry._pools[asyncio.get_running_loop()]._entries]
    assert session.connector is not None and len(session.connector._acquired) == 0
    await client.close_session()
    assert registry.stats().in_use == 0
    await registry.close()
