"""Key churn is named: many sessions of one origin that differ only in identity-compared options warn once.

A registry that holds more than 8 open sessions on one loop for one origin, differing only by options
compared by identity (a ``json_serialize`` lambda, a ``TraceConfig`` or connector made per container),
emits one ``RuntimeWarning`` naming the option and saying how to share it; once per registry, loop,
origin and option. Never with 8 or fewer, nor for sessions that differ in value options (``headers``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session

ORIGIN = "http://churn.example"


@pytest.fixture
async def registries() -> AsyncIterator[Callable[[], SessionRegistry]]:
    """Registries of the test's own, closed afterwards (also when an assertion failed first)."""
    made: list[SessionRegistry] = []

    def make() -> SessionRegistry:
        made.append(SessionRegistry())
        return made[-1]

    yield make
    for registry in made:
        await registry.close()


class Api(AbstractSessionContainer):
    @attach_session
    async def touch(self, session: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession:
        assert session is not None
        return session


@contextmanager
def runtime_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yielded: list[warnings.WarningMessage] = []
        yield yielded
        yielded.extend(w for w in caught if issubclass(w.category, RuntimeWarning))


def per_container_json() -> dict[str, Any]:
    return {"json_serialize": lambda obj: json.dumps(obj)}  # a new function each time


def per_container_trace() -> dict[str, Any]:
    return {"trace_configs": [aiohttp.TraceConfig()]}


async def attach_many(
    registry: SessionRegistry, count: int, options: Callable[[], dict[str, Any]], origin: str = ORIGIN
) -> list[Api]:
    apis = [Api(origin, registry=registry, **options()) for _ in range(count)]
    for api in apis:
        await api.start_session()
    return apis


async def detach(apis: list[Api]) -> None:
    for api in apis:
        await api.close_session()


def assert_names(warning: warnings.WarningMessage, option: str) -> None:
    message = str(warning.message)
    assert option in message, message
    assert "share" in message.lower(), message


@pytest.mark.parametrize(
    ("option", "options"), [("json_serialize", per_container_json), ("trace_configs", per_container_trace)]
)
async def test_the_ninth_session_differing_only_by_identity_warns_once_naming_the_option(
    option: str, options: Callable[[], dict[str, Any]], registries: Callable[[], SessionRegistry]
) -> None:
    registry = registries()
    with runtime_warnings() as caught:
        apis = await attach_many(registry, 8, options)
    assert caught == [], "warned with only 8 sessions"
    with runtime_warnings() as caught:
        apis += await attach_many(registry, 1, options)
    assert len(caught) == 1, "no RuntimeWarning when the 9th session of one origin differs only by identity"
    assert_names(caught[0], option)
    with runtime_warnings() as caught:
        apis += await attach_many(registry, 4, options)  # the 10th to 13th
    assert caught == []
    assert registry.stats().open == 13
    await detach(apis)
    await registry.close()


async def test_a_connector_made_per_container_is_named(registries: Callable[[], SessionRegistry]) -> None:
    registry = registries()
    connectors = [aiohttp.TCPConnector() for _ in range(10)]
    try:
        with runtime_warnings() as caught:
            apis = [Api(ORIGIN, registry=registry, connector=c) for c in connectors]
            for api in apis:
                await api.start_session()
        assert len(caught) == 1, "no RuntimeWarning for 10 sessions differing only by their connector"
        assert_names(caught[0], "connector")
        await detach(apis)
        await registry.close()
    finally:
        for connector in connectors:
            await connector.close()


async def test_idle_sessions_left_by_unattached_calls_count_too(
    registries: Callable[[], SessionRegistry],
) -> None:
    registry = registries()  # idle sessions stay open for 15 s: they are open sessions of the origin
    with runtime_warnings() as caught:
        for _ in range(12):
            await Api(ORIGIN, registry=registry, **per_container_json()).touch()
    assert len(caught) == 1, "no RuntimeWarning for 12 open idle sessions differing only by a lambda"
    assert_names(caught[0], "json_serialize")
    await registry.close()


async def test_sessions_differing_in_value_options_never_warn(
    registries: Callable[[], SessionRegistry],
) -> None:
    registry = registries()
    users = itertools.count()
    with runtime_warnings() as caught:
        apis = await attach_many(registry, 20, lambda: {"headers": {"X-User": str(next(users))}})
    assert caught == []
    assert registry.stats().open == 20
    await detach(apis)
    await registry.close()


async def test_eight_shared_sessions_of_one_origin_never_warn(
    registries: Callable[[], SessionRegistry],
) -> None:
    registry = registries()
    with runtime_warnings() as caught:
        apis = await attach_many(registry, 8, per_container_json)
        shared = await attach_many(registry, 30, dict)  # 30 containers, one shared session
    assert caught == []
    assert registry.stats().open == 9
    await detach(apis + shared)
    await registry.close()


async def test_the_warning_comes_again_for_another_origin_option_registry_or_loop(
    registries: Callable[[], SessionRegistry],
) -> None:
    registry = registries()
    with runtime_warnings() as caught:
        apis = await attach_many(registry, 9, per_container_json)
        apis += await attach_many(registry, 9, per_container_json, origin="http://other.example")
        apis += await attach_many(registry, 9, per_container_trace)
    assert len(caught) == 3, [str(w.message) for w in caught]
    assert_names(caught[0], "json_serialize")
    assert "other.example" in str(caught[1].message)
    assert_names(caught[2], "trace_configs")
    await detach(apis)
    await registry.close()

    other_registry = registries()
    with runtime_warnings() as caught:
        apis = await attach_many(other_registry, 9, per_container_json)
    assert len(caught) == 1, "another registry is not warned"
    await detach(apis)
    await other_registry.close()

    async def on_another_loop() -> int:
        try:
            with runtime_warnings() as caught:
                apis = await attach_many(registry, 9, per_container_json)
            await detach(apis)
        finally:
            await registry.close()
        return len(caught)

    assert await asyncio.to_thread(asyncio.run, on_another_loop()) == 1, "another loop is not warned"
