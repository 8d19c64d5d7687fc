"""AbstractSessionContainer: attaching, borrowing, request helpers, sharing one pool."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from conftest import Upstream
from yarl import URL

from asynctools import AbstractSessionContainer, SessionRegistry


class Api(AbstractSessionContainer):
    pass


class Other(AbstractSessionContainer):
    pass


def test_construction_needs_no_loop_and_creates_nothing() -> None:
    api = Api("http://a.example", raise_for_status=True)
    assert api.session is None
    assert api.base_url == URL("http://a.example")
    assert "detached" in repr(api)


async def test_async_with_attaches_and_releases(registry: SessionRegistry, upstream: Upstream) -> None:
    api = Api(upstream.url(), registry=registry)
    assert api.registry is registry
    async with api as entered:
        assert entered is api
        session = api.session
        assert isinstance(session, aiohttp.ClientSession)
        assert "attached" in repr(api)
        assert registry.stats().in_use == 1
    assert api.session is None
    assert registry.stats().in_use == 0
    assert not session.closed  # idle, warm for the next user


async def test_nested_async_with_holds_one_acquisition(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    async with api:
        session = api.session
        async with api:
            assert api.session is session
        assert api.session is session
        assert registry.stats().sessions[0].users == 1
    assert registry.stats().acquired == 1
    assert registry.stats().in_use == 0


async def test_base_url_class_attribute_and_relative_urls(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    class Versioned(AbstractSessionContainer):
        base_url = upstream.url("/echo/v3")  # type: ignore[assignment]  # the class attribute spelling

    api = Versioned(registry=registry)
    async with api.get("users", params={"q": "1"}) as resp:
        assert (await resp.json())["path"] == "/echo/v3/users"
    async with api.get("/echo/root") as resp:
        assert (await resp.json())["path"] == "/echo/root"
    async with api.get(URL(upstream.url("/echo/absolute"))) as resp:
        assert (await resp.json())["path"] == "/echo/absolute"
    without_base = Api(registry=registry)
    async with without_base.get(upstream.url("/echo/x")) as resp:
        assert (await resp.json())["path"] == "/echo/x"


async def test_base_url_class_keyword_is_checked_at_class_creation_and_inherited(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    class Versioned(AbstractSessionContainer, base_url=upstream.url("/echo/v3")):
        pass

    class Child(Versioned):
        pass

    assert Versioned.base_url == URL(upstream.url("/echo/v3"))  # a URL already on the class
    for api in (Versioned(registry=registry), Child(registry=registry)):
        assert api.base_url == URL(upstream.url("/echo/v3"))
        async with api.get("users") as resp:
            assert (await resp.json())["path"] == "/echo/v3/users"
    elsewhere = Versioned(upstream.url("/echo/other"), registry=registry)  # the instance's own wins
    async with elsewhere.get("x") as resp:
        assert (await resp.json())["path"] == "/echo/other/x"


@pytest.mark.parametrize(
    ("value", "exc", "words"),
    [
        ("api.example.com", ValueError, r"class Bad\(\.\.\., base_url=\.\.\.\): .*has no host"),
        ("ftp://files.example", ValueError, "'ftp'"),
        (42, TypeError, "42"),
    ],
)
def test_a_bad_base_url_class_keyword_is_refused_before_the_class_exists(
    value: object, exc: type[Exception], words: str
) -> None:
    with pytest.raises(exc, match=words):

        class Bad(AbstractSessionContainer, base_url=value):  # type: ignore[arg-type]
            pass

    assert "Bad" not in locals()


def test_base_url_none_as_class_keyword_clears_the_inherited_one() -> None:
    class Site(AbstractSessionContainer, base_url="https://a.example"):
        pass

    class Anywhere(Site, base_url=None):
        pass

    assert Site().base_url == URL("https://a.example")
    assert Anywhere.base_url is None and Anywhere().base_url is None


def test_base_url_given_as_keyword_and_attribute_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Twice gives base_url twice.*'https://b.example'.*keep one"):

        class Twice(AbstractSessionContainer, base_url="https://a.example"):
            base_url = "https://b.example"  # type: ignore[assignment]


async def test_start_and_close_session_as_plain_calls(registry: SessionRegistry) -> None:
    api = Api(registry=registry)
    api.start_session()
    session = api.session
    assert session is not None and registry.stats().in_use == 1
    api.close_session()
    assert api.session is None and registry.stats().in_use == 0
    api.close_session()  # nothing attached: nothing to do


async def test_start_and_close_session_awaited_like_0_1_3() -> None:
    registry = SessionRegistry(idle_timeout=0)
    api = Api(registry=registry)
    await api.start_session()
    session = api.session
    assert session is not None
    await api.close_session()
    assert session.closed  # awaited: waits for the close that idle_timeout=0 asks for
    await registry.close()


async def test_a_close_session_never_awaited_still_releases_and_closes() -> None:
    registry = SessionRegistry(idle_timeout=0)
    api = Api(registry=registry)
    api.start_session()
    session = api.session
    assert session is not None
    api.close_session()
    assert registry.stats().in_use == 0
    await registry.close()  # waits for the close that the plain call started
    assert session.closed


def test_start_session_without_a_loop() -> None:
    with pytest.raises(RuntimeError, match="start_session\\(\\) needs a running event loop"):
        Api().start_session()


async def test_a_borrowed_session_is_used_and_never_closed_or_released(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    async with aiohttp.ClientSession() as mine:
        api = Api(upstream.url(), registry=registry, session=mine)
        assert api.session is mine and "borrowed" in repr(api)
        async with api:
            assert api.session is mine
        api.start_session()
        api.close_session()
        async with api.get("/echo") as resp:
            assert resp.status == 200
        assert api.session is mine and not mine.closed
        assert registry.stats().created == 0


async def test_helpers_send_each_method(registry: SessionRegistry, upstream: Upstream) -> None:
    api = Api(upstream.url(), registry=registry)
    for name in ("get", "post", "put", "patch", "delete", "options"):
        async with getattr(api, name)("/echo") as resp:
            assert (await resp.json())["method"] == name.upper()
    async with api.head("/echo") as resp:
        assert resp.status == 200
    async with api.request("POST", "/echo", data="payload") as resp:
        assert (await resp.json())["body"] == "payload"
    assert registry.stats().in_use == 0
    assert registry.stats().created == 1


async def test_unattached_helpers_hold_the_session_until_the_response_is_released(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0)
    api = Api(upstream.url(), registry=registry)
    # The server holds the body back after its first line, so it cannot all be in already (a body
    # that is gives its connection back, and the session with it, before anybody reads it).
    resp = await api.get("/stream", params={"n": "200", "hold": "1"})
    assert registry.stats().in_use == 1  # body not read yet: the pool must stay open
    upstream.release.set()
    lines = (await resp.text()).splitlines()
    assert lines[-1] == "line 199"
    assert registry.stats().in_use == 0
    upstream.release.clear()
    async with api.get("/stream", params={"n": "200", "hold": "1"}) as resp:
        assert resp.status == 200
        assert registry.stats().in_use == 1
    assert registry.stats().in_use == 0  # left unread: released with the response
    upstream.release.set()  # the server's handler may finish now
    resp = await api.head("/echo")  # no body: released as soon as the headers are in
    assert registry.stats().in_use == 0
    resp.release()
    await registry.close()


async def test_unattached_helper_releases_when_the_request_fails(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(upstream.url(), registry=registry, raise_for_status=True)
    with pytest.raises(aiohttp.ClientResponseError):
        await api.get("/status/503")
    dead = Api("http://127.0.0.1:9", registry=registry)  # discard port: nothing listens
    with pytest.raises(aiohttp.ClientConnectionError):
        async with dead.get("/"):
            pass
    assert registry.stats().in_use == 0


async def test_attached_helpers_use_the_attached_session(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Api(upstream.url(), registry=registry)
    async with api:
        for _ in range(3):
            async with api.get("/echo") as resp:
                await resp.read()
        assert registry.stats().acquired == 1
    assert len(upstream.peers) == 1


async def test_containers_of_any_class_share_one_session_and_one_pool(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api, other = Api(upstream.url("/a"), registry=registry), Other(upstream.url("/b"), registry=registry)
    async with api, other:
        assert api.session is other.session
        for container in (api, other, api, other):
            async with container.get("/echo") as resp:
                await resp.read()
    assert registry.stats().created == 1
    assert len(upstream.peers) == 1
    different = Api(upstream.url(), registry=registry, headers={"X-Other": "1"})
    async with api, different:
        assert different.session is not api.session


async def test_seed_style_init_with_session_kwargs(registry: SessionRegistry, upstream: Upstream) -> None:
    class MathRequests(AbstractSessionContainer):
        def __init__(self) -> None:
            super().__init__(raise_for_status=True, registry=registry)

    maths = MathRequests()
    async with maths:
        with pytest.raises(aiohttp.ClientResponseError):
            async with maths.get(upstream.url("/status/404")):
                pass


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "words"),
    [
        (("ftp://a.example",), {}, ValueError, "scheme 'ftp'"),
        (("/relative",), {}, ValueError, "has no host"),
        ((42,), {}, TypeError, "str or a yarl.URL"),
        ((), {"registry": object()}, TypeError, "registry must be a SessionRegistry"),
        ((), {"session": "s"}, TypeError, "session must be an aiohttp.ClientSession"),
        ((), {"raise_for_stats": True}, TypeError, "'raise_for_stats'"),
    ],
)
def test_bad_input_is_refused_at_construction(
    args: tuple[object, ...], kwargs: dict[str, object], exc: type[Exception], words: str
) -> None:
    with pytest.raises(exc, match=words):
        Api(*args, **kwargs)  # type: ignore[arg-type]


async def test_entering_concurrently_from_many_tasks(registry: SessionRegistry) -> None:
    api = Api(registry=registry)

    async def use() -> None:
        async with api:
            await asyncio.sleep(0)

    await asyncio.gather(*(use() for _ in range(50)))
    assert registry.stats().acquired == 1
    assert registry.stats().in_use == 0
