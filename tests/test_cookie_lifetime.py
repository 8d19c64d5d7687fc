"""Cookie jars live as long as their container.

With ``isolate_cookies=True`` a container's cookies survive its session's idle timeout, LRU eviction
and any amount of churn, attached or not; 200 concurrent per-user containers each keep their own; and
per-user containers never evict the shared sessions of other users.
"""

from __future__ import annotations

import asyncio

from conftest import Upstream
from test_cookies import Account, site

from asynctools import SessionRegistry


async def until_nothing_open(registry: SessionRegistry) -> None:
    while registry.stats().open:  # noqa: ASYNC110 (the idle timer closes them; stats() reports it)
        await asyncio.sleep(0.01)


async def test_cookies_survive_the_idle_timeout(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0.05)
    alice = Account(site(upstream), registry=registry, isolate_cookies=True)
    try:
        await alice.login("alice")
        await until_nothing_open(registry)  # alice's idle session was closed
        assert await alice.cookies_sent() == {"user": "alice"}, "the cookie jar went with the idle session"
        async with alice:
            assert await alice.cookies_sent() == {"user": "alice"}
    finally:
        await registry.close()


async def test_cookies_set_while_attached_survive_the_idle_timeout(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0.05)
    alice = Account(site(upstream), registry=registry, isolate_cookies=True)
    try:
        async with alice:
            await alice.login("alice")
        await until_nothing_open(registry)
        async with alice:
            assert await alice.cookies_sent() == {"user": "alice"}, (
                "the cookie jar went with the idle session"
            )
    finally:
        await registry.close()


async def test_cookies_survive_lru_eviction(upstream: Upstream) -> None:
    registry = SessionRegistry(max_idle=1)
    alice = Account(site(upstream), registry=registry, isolate_cookies=True)
    bob = Account(site(upstream), registry=registry, isolate_cookies=True)
    try:
        await alice.login("alice")
        await bob.login("bob")  # bob's idle session evicts alice's
        for key in range(3):  # and other sites' sessions come and go
            await Account(site(upstream), registry=registry, headers={"X-Key": str(key)}).cookies_sent()
        assert await alice.cookies_sent() == {"user": "alice"}, "the cookie jar went with the evicted session"
        assert await bob.cookies_sent() == {"user": "bob"}
    finally:
        await registry.close()


async def test_cookies_survive_any_amount_of_churn_attached_or_not(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0.01, max_idle=2)
    accounts = [Account(site(upstream), registry=registry, isolate_cookies=True) for _ in range(5)]
    try:
        for index, account in enumerate(accounts):
            await account.login(f"user{index}")
        for round_ in range(4):
            for index, account in enumerate(accounts):
                if (index + round_) % 2:
                    async with account:
                        assert await account.cookies_sent() == {"user": f"user{index}"}, (round_, index)
                else:
                    assert await account.cookies_sent() == {"user": f"user{index}"}, (round_, index)
            await asyncio.sleep(0.02)  # past the idle timeout: idle sessions expire between rounds
    finally:
        await registry.close()


async def test_two_hundred_concurrent_per_user_containers_each_keep_their_own_cookies(
    upstream: Upstream,
) -> None:
    registry = SessionRegistry()
    accounts = [Account(site(upstream), registry=registry, isolate_cookies=True) for _ in range(200)]
    logged_in = asyncio.Barrier(200) if hasattr(asyncio, "Barrier") else None
    try:

        async def user(index: int) -> dict[str, str]:
            await accounts[index].login(f"user{index}")
            if logged_in is not None:
                await logged_in.wait()  # every user logged in before any reads
            return await accounts[index].cookies_sent()

        seen = await asyncio.gather(*(user(i) for i in range(200)))
        wrong = {i: cookies for i, cookies in enumerate(seen) if cookies != {"user": f"user{i}"}}
        assert wrong == {}, f"{len(wrong)} of 200 users lost or mixed their cookies"
    finally:
        await registry.close()


async def test_per_user_containers_never_evict_the_shared_sessions_of_other_users(upstream: Upstream) -> None:
    registry = SessionRegistry(max_idle=2)
    try:
        async with registry.session(site(upstream)) as shared:
            pass  # idle now, kept warm for the next plain user
        for batch in range(10):
            accounts = [Account(site(upstream), registry=registry, isolate_cookies=True) for _ in range(20)]
            await asyncio.gather(*(a.login(f"u{batch}-{i}") for i, a in enumerate(accounts)))
        async with registry.session(site(upstream)) as again:
            assert again is shared, "200 per-user containers evicted the shared session of plain users"
            assert not again.closed
    finally:
        await registry.close()
