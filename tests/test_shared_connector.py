"""One connection pool per loop: what shares it, what must not, and what closes when."""

from __future__ import annotations

import aiohttp
import pytest
from conftest import Upstream, read_json

from asynctools import SessionRegistry


async def get_echo(session: aiohttp.ClientSession, upstream: Upstream) -> dict[str, object]:
    async with session.get(upstream.url("/echo")) as resp:
        data: dict[str, object] = await read_json(resp)
        return data


async def test_sessions_with_different_options_share_connections_but_not_headers(upstream):
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


async def test_a_session_closed_when_idle_leaves_its_connections_warm(upstream):
    registry = SessionRegistry(idle_timeout=0)  # every session closes as its last user leaves
    for _ in range(3):
        async with registry.session(upstream.url()) as session:
            await get_echo(session, upstream)
        assert registry.stats().open == 0
    assert registry.stats().created == 3
    assert len(upstream.peers) == 1  # no new connection, no new handshake, per session
    await registry.close()


async def test_a_users_connector_is_theirs_alone_and_never_closed(upstream):
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


async def test_options_that_build_a_connector_get_their_own(upstream):
    registry = SessionRegistry()
    async with (
        registry.session(upstream.url()) as shared,
        registry.session(upstream.url(), connector_owner=True) as other,
    ):
        assert other.connector is not None and other.connector is not shared.connector
    connector = other.connector
    await registry.close()
    assert connector is not None and connector.closed and other.closed  # ours: closed with its session


async def test_close_closes_the_shared_connector_and_every_session_on_it(upstream):
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
