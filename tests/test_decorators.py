"""attach_session / attach_named_session: which session each call gets, and that it is always released."""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import AsyncGenerator
from typing import Any, cast

import aiohttp
import pytest
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_named_session, attach_session


class Api(AbstractSessionContainer):
    @attach_session
    async def which(self, session: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession | None:
        """Return the session this call got."""
        return session

    @attach_session
    async def positional(
        self, a: int, session: aiohttp.ClientSession | None = None, b: int = 0
    ) -> tuple[int, aiohttp.ClientSession | None, int]:
        return (a, session, b)

    @attach_session
    async def keyword_only(
        self, *, session: aiohttp.ClientSession | None = None
    ) -> aiohttp.ClientSession | None:
        return session

    @attach_session
    async def via_kwargs(self, **kwargs: object) -> object:
        return kwargs["session"]

    @attach_named_session("http")
    async def named(self, http: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession | None:
        return http

    @attach_session
    async def fails(self, session: aiohttp.ClientSession | None = None) -> None:
        raise LookupError("boom")

    @attach_session
    async def blocks(self, event: asyncio.Event, session: aiohttp.ClientSession | None = None) -> None:
        event.set()
        await asyncio.Event().wait()

    @attach_session
    async def lines(
        self, url: str, session: aiohttp.ClientSession | None = None
    ) -> AsyncGenerator[str, None]:
        assert session is not None
        async with session.get(url) as resp:
            async for line in resp.content:
                yield line.decode().strip()

    @attach_session
    async def echo_back(self, session: aiohttp.ClientSession | None = None) -> AsyncGenerator[object, object]:
        received: object = "start"
        while True:
            try:
                received = yield received
            except KeyError as exc:
                received = f"caught {exc.args[0]}"
            if received == "stop":
                return


def in_use(registry: SessionRegistry) -> int:
    return registry.stats().in_use


async def test_types_and_metadata_are_kept(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    call = api.which()
    assert isinstance(call, types.CoroutineType)
    await call
    gen = api.lines("http://a.example")
    assert isinstance(gen, types.AsyncGeneratorType)
    await gen.aclose()
    assert Api.which.__name__ == "which"
    assert Api.which.__doc__ == "Return the session this call got."
    assert Api.which.__wrapped__.__qualname__ == "Api.which"  # type: ignore[attr-defined]


def test_plain_functions_are_refused_at_decoration() -> None:
    def plain(self: object, session: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession | None:
        return session

    with pytest.raises(TypeError, match="async def methods and async generator methods"):
        attach_session(plain)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def methods"):
        attach_named_session("http")(plain)  # type: ignore[arg-type]


def test_a_method_without_the_parameter_is_refused_at_decoration() -> None:
    async def no_session(self: object) -> None:
        return None

    async def positional_only(
        self: object, session: aiohttp.ClientSession | None = None, /
    ) -> aiohttp.ClientSession | None:
        return session

    with pytest.raises(TypeError, match=r"no_session\(\) has no parameter 'session'.*add 'session=None'"):
        attach_session(no_session)
    with pytest.raises(TypeError, match="has no parameter 'http'"):
        attach_named_session("http")(Api.which.__wrapped__)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="positional_only"):
        attach_session(positional_only)


@pytest.mark.parametrize("kind", [classmethod, staticmethod])
def test_a_classmethod_or_staticmethod_is_refused_in_either_order(
    kind: type[classmethod[Any, Any, Any] | staticmethod[Any, Any]],
) -> None:
    async def fetch(
        cls: object, session: aiohttp.ClientSession | None = None
    ) -> aiohttp.ClientSession | None:
        return session

    # @attach_session over @classmethod: refused at decoration, naming the kind and what to do.
    message = rf"fetch\(\) is a {kind.__name__} decorated with @attach_session.*instance methods only"
    with pytest.raises(TypeError, match=message):
        attach_session(kind(fetch))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=kind.__name__):
        attach_named_session("http")(kind(fetch))  # type: ignore[arg-type]
    # @classmethod over @attach_session: the class would hand the method its property object as a
    # session (cls.session); refused when the container class is defined.
    with pytest.raises(TypeError, match=rf"fetch\(\) is a {kind.__name__} decorated with @attach_session"):
        type("Wrapped", (AbstractSessionContainer,), {"fetch": kind(attach_session(fetch))})
    # Without the decorator, a classmethod on a container is the user's own business.
    plain = type("Plain", (AbstractSessionContainer,), {"fetch": kind(fetch)})
    assert isinstance(vars(plain)["fetch"], kind)


@pytest.mark.parametrize(("name", "exc"), [(3, TypeError), ("not a name", ValueError), ("", ValueError)])
def test_bad_session_names(name: str | int, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="attach_named_session"):
        attach_named_session(name)  # type: ignore[arg-type]


async def test_a_callers_session_wins(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    async with aiohttp.ClientSession() as mine:
        assert await api.which(session=mine) is mine
        assert await api.which(mine) is mine
        assert await api.positional(1, mine, b=2) == (1, mine, 2)
        assert await api.keyword_only(session=mine) is mine
        assert await api.named(http=mine) is mine
        async with api:
            assert await api.which(session=mine) is mine
        gen = api.lines("http://a.example", session=mine)
        await gen.aclose()
    assert registry.stats().acquired == 1  # only the async with


async def test_a_callers_session_wins_for_generators_too(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(registry=registry)
    async with aiohttp.ClientSession() as mine:
        assert [line async for line in api.lines(upstream.url("/stream?n=2"), session=mine)] == [
            "line 0",
            "line 1",
        ]
    assert registry.stats().acquired == 0


async def test_the_attached_session_comes_next(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    async with api:
        attached = api.session
        assert await api.which() is attached
        assert await api.which(None) is attached
        assert await api.positional(1, None, 3) == (1, attached, 3)
        assert await api.positional(1) == (1, attached, 0)
        assert await api.keyword_only() is attached
        assert await api.via_kwargs() is attached
        assert await api.named() is attached
    assert registry.stats().acquired == 1


async def test_unattached_calls_acquire_for_the_call_only(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    seen = await api.which()
    assert isinstance(seen, aiohttp.ClientSession)
    assert await api.positional(5) == (5, seen, 0)
    assert await api.named() is seen
    assert in_use(registry) == 0
    assert registry.stats().acquired == 3 and registry.stats().created == 1


async def test_an_unattached_call_returns_after_a_close_it_caused() -> None:
    registry = SessionRegistry(idle_timeout=0)  # every release to zero users closes the session
    api = Api(registry=registry)
    seen = await api.which()
    assert isinstance(seen, aiohttp.ClientSession)
    assert seen.closed  # closed, not just scheduled to close, when the call returns
    assert registry.stats().open == 0
    await registry.close()


async def test_released_on_exception(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    with pytest.raises(LookupError, match="boom"):
        await api.fails()
    assert in_use(registry) == 0


async def test_released_on_cancellation(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    started = asyncio.Event()
    task = asyncio.ensure_future(api.blocks(started))
    await started.wait()
    assert in_use(registry) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert in_use(registry) == 0


async def test_an_async_generator_holds_the_session_for_its_iteration(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(registry=registry)
    gen = api.lines(upstream.url("/stream?n=3"))
    assert in_use(registry) == 0  # nothing acquired before the first step
    assert await gen.__anext__() == "line 0"
    assert in_use(registry) == 1
    assert [line async for line in gen] == ["line 1", "line 2"]
    assert in_use(registry) == 0


async def test_released_on_break(registry: SessionRegistry, upstream: Upstream) -> None:
    api = Api(registry=registry)
    async for line in api.lines(upstream.url("/stream?n=50")):
        assert line == "line 0"
        break
    gc.collect()  # the abandoned generator is finalised; the loop schedules its aclose()
    for _ in range(10):
        if in_use(registry) == 0:
            break
        await asyncio.sleep(0)
    assert in_use(registry) == 0


async def test_released_on_aclose_and_inner_generator_closed(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(registry=registry)
    gen = api.lines(upstream.url("/stream?n=50"))
    assert await gen.__anext__() == "line 0"
    await gen.aclose()
    assert in_use(registry) == 0
    assert cast("types.AsyncGeneratorType[str, None]", gen).ag_frame is None


async def test_asend_and_athrow_reach_the_inner_generator(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    gen = api.echo_back()
    assert await gen.asend(None) == "start"
    assert await gen.asend("ping") == "ping"
    assert await gen.athrow(KeyError("k")) == "caught k"
    with pytest.raises(StopAsyncIteration):
        await gen.asend("stop")
    assert in_use(registry) == 0
    gen = api.echo_back()
    await gen.asend(None)
    with pytest.raises(ValueError, match="not caught"):
        await gen.athrow(ValueError("not caught"))
    assert in_use(registry) == 0


async def test_an_empty_generator_releases_at_once(registry: SessionRegistry) -> None:
    class Empty(AbstractSessionContainer):
        @attach_session
        async def nothing(self, session: aiohttp.ClientSession | None = None) -> AsyncGenerator[int, None]:
            return
            yield

    assert [x async for x in Empty(registry=registry).nothing()] == []
    assert in_use(registry) == 0


async def test_cancelled_while_the_generator_awaits(registry: SessionRegistry, upstream: Upstream) -> None:
    api = Api(registry=registry)
    upstream.release.clear()

    async def consume() -> list[str]:
        return [line async for line in api.lines(upstream.url("/wait"))]

    task = asyncio.ensure_future(consume())
    await upstream.waiting.wait()
    assert in_use(registry) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert in_use(registry) == 0


async def test_a_class_that_is_not_an_initialised_container(registry: SessionRegistry) -> None:
    class NotAContainer:
        @attach_session
        async def call(self, session: aiohttp.ClientSession | None = None) -> None:
            return None

        @attach_session
        async def gen(self, session: aiohttp.ClientSession | None = None) -> AsyncGenerator[None, None]:
            yield None

    class Forgot(AbstractSessionContainer):
        def __init__(self) -> None:
            pass

        @attach_session
        async def call(self, session: aiohttp.ClientSession | None = None) -> None:
            return None

    with pytest.raises(TypeError, match="not an initialised AbstractSessionContainer"):
        await NotAContainer().call()
    with pytest.raises(TypeError, match=r"super\(\)\.__init__\(\)"):
        await Forgot().call()
    with pytest.raises(TypeError, match="not an initialised"):
        await NotAContainer().gen().__anext__()
    async with aiohttp.ClientSession() as mine:  # a given session needs no container
        assert await NotAContainer().call(session=mine) is None  # type: ignore[func-returns-value]


async def test_a_thousand_concurrent_unattached_calls(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    sessions = await asyncio.gather(*(api.which() for _ in range(1000)))
    assert len({id(s) for s in sessions}) == 1
    assert registry.stats().created == 1 and in_use(registry) == 0
