"""One connection pool per loop: what shares it, what must not, and what closes when."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler
from conftest import Upstream, read_json

from asynctools import SessionRegistry


async def get_echo(session: aiohttp.ClientSession, upstream: Upstream) -> dict[str, object]:
    async with session.get(upstream.url("/echo")) as resp:
        data: dict[str, object] = await read_json(resp)
        return data


async def test_sessions_with_different_options_share_connections_but_not_headers(upstream: Upstream) -> None:
    registry = SessionRegistry()
    async with registry.session(upstream.url(), headers={"Authorization": "token A"}) as a:
        first = await get_echo(a, upstream)
    async with registry.session(upstream.url(), headers={"Authorization": "token B"}) as b:
        second = await get_echo(b, upstream)
        assert a is not b and a.connector is b.connector
    assert first["headers"]["Authorization"] == "token A"  # type: ignore[index]
    assert second["headers"]["Authorization"] == "token B"  # type: ignore[index]
    assert len(upstream.peers) == 1  # one TCP connection served both keys
    await registry.close()


async def test_a_session_closed_when_idle_leaves_its_connections_warm(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0)  # every session closes as its last user leaves
    for _ in range(3):
        async with registry.session(upstream.url()) as session:
            await get_echo(session, upstream)
        assert registry.stats().open == 0
    assert registry.stats().created == 3
    assert len(upstream.peers) == 1  # no new connection, no new handshake, per session
    await registry.close()


async def test_a_users_connector_is_theirs_alone_and_never_closed(upstream: Upstream) -> None:
    registry = SessionRegistry()
    mine = aiohttp.TCPConnector()
    try:
        async with registry.session(upstream.url(), connector=mine) as own:
            assert own.connector is mine
            await get_echo(own, upstream)
            async with registry.session(upstream.url()) as shared:
                assert shared.connector is not mine
                await get_echo(shared, upstream)
        await registry.close()
        assert not mine.closed
        assert len(upstream.peers) == 2  # the user's pool and the registry's never mix connections
    finally:
        await mine.close()


async def test_options_that_build_a_connector_get_their_own(upstream: Upstream) -> None:
    registry = SessionRegistry()
    async with (
        registry.session(upstream.url()) as shared,
        registry.session(upstream.url(), connector_owner=True) as other,
    ):
        assert other.connector is not None and other.connector is not shared.connector
    connector = other.connector
    await registry.close()
    assert connector is not None and connector.closed and other.closed  # ours: closed with its session


async def test_close_closes_the_shared_connector_and_every_session_on_it(upstream: Upstream) -> None:
    registry = SessionRegistry()
    sessions = [await registry.acquire(upstream.url(), headers={"X-N": str(n)}) for n in range(3)]
    connector = sessions[0].connector
    assert connector is not None and all(s.connector is connector for s in sessions)
    await get_echo(sessions[0], upstream)
    await registry.close()
    assert connector.closed and all(s.closed for s in sessions)
    for session in sessions:
        await registry.release(session)
    with pytest.raises(ValueError, match="released more times"):
        await registry.release(sessions[0])
    async with registry.session(upstream.url()) as fresh:  # a new pool, a new connector
        assert fresh.connector is not connector and not fresh.closed
    await registry.close()


# -- with metrics=True the shared connector counts its connections per site ---------------------------


def connections(registry: SessionRegistry) -> tuple[int, int, int, int]:
    """(opened, active, idle, closed) for the registry's only site."""
    assert registry.metrics is not None
    (site,) = registry.metrics.sites()
    return site.connections_opened, site.connections_active, site.connections_idle, site.connections_closed


async def test_metrics_count_a_connection_active_then_idle_then_closed_with_its_duration(
    upstream: Upstream,
) -> None:
    registry = SessionRegistry(metrics=True)
    async with registry.session(upstream.url()) as session:
        request = asyncio.create_task(session.get(upstream.url("/wait")))
        await upstream.waiting.wait()
        assert connections(registry) == (1, 1, 0, 0)  # the slow response holds it
        upstream.release.set()
        async with await request as resp:
            await resp.read()
        assert connections(registry) == (1, 0, 1, 0)  # back in the keep-alive pool
        await get_echo(session, upstream)
        assert connections(registry) == (1, 0, 1, 0)  # reused, released again
    assert connections(registry) == (1, 0, 1, 0)  # an idle session keeps its connection warm
    await registry.close()  # closes the shared connector, and with it the connection
    await until_closed(registry, 1)
    assert connections(registry) == (1, 0, 0, 1)
    (site,) = registry.stats().metrics
    assert (site.connections_active, site.connections_idle, site.connections_closed) == (0, 0, 1)
    assert 0 < site.connection_time < 60


async def test_metrics_count_a_connection_the_server_drops(upstream_dropping: DroppingUpstream) -> None:
    registry = SessionRegistry(metrics=True)
    async with registry.session(upstream_dropping.url) as session:
        for n in (1, 2):
            async with session.get(upstream_dropping.url) as resp:  # a new connection each time
                assert await resp.read() == b"ok"
            await upstream_dropping.hang_up()
            await upstream_dropping.dropped(n)  # while idle in the pool
            if CLOSED_FUTURE:
                await until_closed(registry, n)  # noticed as it happens
                assert connections(registry) == (n, 0, 0, n)
            else:  # aiohttp 3.12.0: noticed when the next connection is opened
                assert connections(registry) == (n, 0, 1, n - 1)
    await registry.close()
    await until_closed(registry, 2)
    assert connections(registry) == (2, 0, 0, 2)


async def test_metrics_count_a_connection_closed_by_the_response(upstream: Upstream) -> None:
    registry = SessionRegistry(metrics=True)
    async with registry.session(upstream.url(), headers={"Connection": "close"}) as session:
        await get_echo(session, upstream)
        await until_closed(registry, 1)
        assert connections(registry) == (1, 0, 0, 1)
        assert registry.metrics is not None and registry.metrics.sites()[0].connection_time > 0
    await registry.close()


async def test_a_refused_connection_is_never_open(upstream: Upstream) -> None:
    registry = SessionRegistry(metrics=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    async with registry.session(refused) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(refused)
    assert connections(registry) == (0, 0, 0, 0)
    await registry.close()


async def test_a_users_connector_is_not_observed(upstream: Upstream) -> None:
    registry = SessionRegistry(metrics=True)
    async with aiohttp.TCPConnector() as mine:
        async with registry.session(upstream.url(), connector=mine) as own:
            await get_echo(own, upstream)
        # The request is counted by the tracing; the connection on the user's connector is not.
        assert connections(registry) == (1, 0, 0, 0)
        await registry.close()


async def test_no_observing_connector_without_metrics(upstream: Upstream) -> None:
    registry = SessionRegistry()
    async with registry.session(upstream.url()) as session:
        assert type(session.connector) is aiohttp.TCPConnector
    await registry.close()


CLOSED_FUTURE = hasattr(ResponseHandler, "closed")  # aiohttp's close signal: not in 3.12.0


async def until(condition: Callable[[], bool]) -> None:
    """Wait, letting the loop run, until *condition* holds (no deadline: a loaded machine is slow)."""
    while not condition():  # noqa: ASYNC110 (what changes it is aiohttp's, with no event of ours)
        await asyncio.sleep(0.001)


async def until_closed(registry: SessionRegistry, n: int) -> None:
    """Until the registry's site has counted *n* connections closed."""
    await until(lambda: connections(registry)[3] == n)


class DroppingUpstream:
    """A raw asyncio HTTP/1.1 server that answers one request per connection, keep-alive, then hangs up."""

    def __init__(self) -> None:
        self.url = ""
        self.hung_up = 0
        self.accepted = 0
        self.allowed = 0  # connections the test has let the server hang up on
        self._changed = asyncio.Condition()

    async def hang_up(self) -> None:
        """Let the server hang up on the next connection (the client has released it to its pool)."""
        async with self._changed:
            self.allowed += 1
            self._changed.notify_all()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
            await writer.drain()
            async with self._changed:
                await self._changed.wait_for(lambda: self.allowed >= number)
        finally:
            writer.close()
            await writer.wait_closed()
            async with self._changed:
                self.hung_up += 1
                self._changed.notify_all()

    async def dropped(self, n: int) -> None:
        """Until the server has hung up on *n* connections."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.hung_up >= n)


@pytest.fixture
async def upstream_dropping() -> AsyncIterator[DroppingUpstream]:
    upstream = DroppingUpstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        yield upstream
    finally:
        server.close()
        await server.wait_closed()
