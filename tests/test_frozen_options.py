"""Options are frozen when given: mutating the caller's dicts or lists afterwards changes no session.

What a container, ``acquire()`` or ``session()`` keys on is exactly what its session is built from: a deep,
immutable copy taken when the options are given. So a caller who reuses and mutates one ``headers`` dict
changes neither the container it built earlier nor any other container, attached or not.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session


class Api(AbstractSessionContainer):
    @attach_session
    async def sent(self, session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
        """What the server received from a decorated call: its headers."""
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/echo")) as resp:
            return dict((await resp.json())["headers"])

    async def sent_by_helper(self) -> dict[str, Any]:
        """The same through the request helper ``get``."""
        async with self.get("/echo") as resp:
            return dict((await resp.json())["headers"])


async def echoed(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        return dict((await resp.json())["headers"])


async def test_mutating_headers_after_construction_changes_neither_that_container_nor_a_new_one(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    h = {"Authorization": "token A"}
    a = Api(upstream.url(), registry=registry, headers=h)
    h["Authorization"] = "token B"
    async with a:
        assert (await a.sent())["Authorization"] == "token A", "the container sends the caller's later value"
        fresh = Api(upstream.url(), registry=registry, headers={"Authorization": "token A"})
        assert (await fresh.sent())["Authorization"] == "token A", "a new container gets a mutated session"
        b = Api(upstream.url(), registry=registry, headers={"Authorization": "token B"})
        assert (await b.sent())["Authorization"] == "token B"


async def test_mutating_headers_changes_nothing_for_unattached_calls_and_helpers(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    h = {"Authorization": "token A"}
    a = Api(upstream.url(), registry=registry, headers=h)
    h["Authorization"] = "token B"
    assert (await a.sent())["Authorization"] == "token A"
    assert (await a.sent_by_helper())["Authorization"] == "token A"
    other = Api(upstream.url(), registry=registry, headers={"Authorization": "token A"})
    assert (await other.sent_by_helper())["Authorization"] == "token A"


async def test_a_container_made_before_the_mutation_with_equal_options_is_not_changed_either(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    h = {"Authorization": "token A"}
    a = Api(upstream.url(), registry=registry, headers=h)
    b = Api(upstream.url(), registry=registry, headers={"Authorization": "token A"})
    h["Authorization"] = "token B"
    async with a, b:  # a creates the shared session: from the options as they were given
        assert (await b.sent())["Authorization"] == "token A"
        assert (await a.sent())["Authorization"] == "token A"


async def test_nested_values_are_frozen_too(registry: SessionRegistry, upstream: Upstream) -> None:
    pairs = [["X-Token", "A"]]  # headers as a list of pairs: the inner list is mutable too
    a = Api(upstream.url(), registry=registry, headers=pairs)
    pairs[0][1] = "B"
    pairs.append(["X-Extra", "1"])
    headers = await a.sent()
    assert headers["X-Token"] == "A"
    assert "X-Extra" not in headers
    fresh = Api(upstream.url(), registry=registry, headers=[["X-Token", "A"]])
    async with fresh:
        headers = await fresh.sent()
        assert headers["X-Token"] == "A" and "X-Extra" not in headers


async def test_a_mutated_skip_auto_headers_list_changes_nothing(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    skip: list[str] = []
    a = Api(upstream.url(), registry=registry, skip_auto_headers=skip)
    skip.append("User-Agent")
    async with a:
        assert "User-Agent" in await a.sent()


async def test_registry_session_freezes_its_options_when_called(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    h = {"Authorization": "token A"}
    lease = registry.session(upstream.url(), headers=h)
    h["Authorization"] = "token B"
    async with lease as session:
        assert (await echoed(session, upstream.url("/echo")))["Authorization"] == "token A"
    async with registry.session(upstream.url(), headers={"Authorization": "token A"}) as session:
        assert (await echoed(session, upstream.url("/echo")))["Authorization"] == "token A"


async def test_acquire_freezes_its_options_and_a_later_mutation_keys_nothing_old(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    h = {"Authorization": "token A", "X-List": "1"}
    first = await registry.acquire(upstream.url(), headers=h)
    h["Authorization"] = "token B"
    try:
        again = await registry.acquire(upstream.url(), headers={"Authorization": "token A", "X-List": "1"})
        try:
            assert again is first  # the same options as given: the same session
            assert (await echoed(again, upstream.url("/echo")))["Authorization"] == "token A"
        finally:
            await registry.release(again)
        mutated = await registry.acquire(upstream.url(), headers=h)
        try:
            assert mutated is not first  # other options now: another session, that sends them
            assert (await echoed(mutated, upstream.url("/echo")))["Authorization"] == "token B"
        finally:
            await registry.release(mutated)
    finally:
        await registry.release(first)
    assert registry.stats().in_use == 0
