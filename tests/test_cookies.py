"""Cookie isolation: containers that ask for it share TCP connections but never each other's cookies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry


class Account(AbstractSessionContainer):
    async def login(self, user: str) -> None:
        async with self.get("/set-cookie", params={"name": "user", "value": user}) as resp:
            assert resp.status == 200

    async def cookies_sent(self) -> dict[str, str]:
        async with self.get("/echo") as resp:
            return dict((await resp.json())["cookies"])


def site(upstream: Upstream) -> str:
    # aiohttp's cookie jar ignores cookies of IP addresses: talk to the loopback server by name.
    return upstream.url().replace("127.0.0.1", "localhost")


async def test_shared_sessions_share_cookies_as_one_clientsession_does(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    alice, bob = Account(site(upstream), registry=registry), Account(site(upstream), registry=registry)
    async with alice, bob:
        await alice.login("alice")
        assert await bob.cookies_sent() == {"user": "alice"}  # documented: same key, same jar


async def test_isolated_containers_never_see_each_others_cookies_but_share_connections(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    alice = Account(site(upstream), registry=registry, isolate_cookies=True)
    bob = Account(site(upstream), registry=registry, isolate_cookies=True)
    async with alice, bob:
        assert alice.session is not bob.session
        await alice.login("alice")
        await bob.login("bob")
        for _ in range(3):
            assert await alice.cookies_sent() == {"user": "alice"}
            assert await bob.cookies_sent() == {"user": "bob"}
        assert alice.session is not None and bob.session is not None
        assert alice.session.connector is bob.session.connector
    assert len(upstream.peers) == 1  # every request of both went over one kept-alive connection
    plain = Account(site(upstream), registry=registry)
    assert await plain.cookies_sent() == {}
    await registry.close()
    assert alice.session is None


async def test_the_shared_connector_outlives_its_sessions_and_closes_with_the_registry(
    upstream: Upstream,
) -> None:
    # Sessions come and go (idle_timeout=0 closes each at once); the connections stay warm in the
    # registry's connector until the registry closes.
    registry = SessionRegistry(idle_timeout=0)
    first = Account(site(upstream), registry=registry, isolate_cookies=True)
    second = Account(site(upstream), registry=registry, isolate_cookies=True)
    async with first:
        connector = first.session.connector if first.session else None
        async with second:
            await second.cookies_sent()
        assert connector is not None and not connector.closed
    assert registry.stats().open == 0 and not connector.closed
    async with second:
        assert second.session is not None and second.session.connector is connector
        await second.cookies_sent()
    assert len(upstream.peers) == 1  # one connection served both containers, before and after
    await registry.close()
    assert connector.closed


async def test_close_closes_shared_connectors_even_in_use(upstream: Upstream) -> None:
    registry = SessionRegistry()
    account = Account(site(upstream), registry=registry, isolate_cookies=True)
    await account.start_session()
    assert account.session is not None
    connector = account.session.connector
    await registry.close()
    assert connector is not None and connector.closed
    await account.close_session()


@pytest.mark.parametrize("option", ["cookie_jar", "cookies", "connector"])
async def test_isolation_refuses_a_jar_or_connector_of_the_users(option: str) -> None:
    value: Any = {"cookie_jar": aiohttp.CookieJar(), "cookies": {"a": "1"}, "connector": None}[option]
    if option == "connector":
        value = aiohttp.TCPConnector()
    try:
        with pytest.raises(ValueError, match=f"cannot be combined with {option}"):
            Account("http://a.example", isolate_cookies=True, **{option: value})
    finally:
        if isinstance(value, aiohttp.TCPConnector):
            await value.close()
