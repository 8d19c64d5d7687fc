"""URLs: a host no hostname may contain is refused up front; relative URLs keep percent-encoded segments.

A bad host raises ``ValueError`` naming it at container construction, ``acquire()`` or ``session()``,
before anything is created or counted, and ``stats()`` and ``close()`` work afterwards (debug mode too).
Joining a relative URL onto ``base_url`` keeps ``%2F`` as aiohttp's own ``ClientSession(base_url=...)``
does: what the server receives (``request.raw_path``) is checked, from a server of this file's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from asynctools import AbstractSessionContainer, SessionRegistry

BAD_HOST_CHARACTERS = [" ", "<", ">", "|", "{", "}", "\\", "^", '"', "`", "\x00", "\x01", "\x1f", "\x7f"]


class Api(AbstractSessionContainer):
    async def raw_path(self, url: str) -> str:
        async with self.get(url) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text()


def names_the_host(message: str, host: str) -> bool:
    return host in message or repr(host)[1:-1] in message


def assert_untouched(registry: SessionRegistry) -> None:
    stats = registry.stats()
    assert (stats.open, stats.in_use, stats.created, stats.acquired) == (0, 0, 0, 0), stats


@pytest.fixture(params=[False, True], ids=["plain", "debug"])
async def bad_registry(request: pytest.FixtureRequest) -> AsyncIterator[SessionRegistry]:
    registry = SessionRegistry(debug=request.param)
    yield registry
    await registry.close()


@pytest.mark.parametrize("char", BAD_HOST_CHARACTERS, ids=[f"{ord(c):02x}" for c in BAD_HOST_CHARACTERS])
async def test_a_container_with_a_bad_host_is_refused_naming_it(
    char: str, bad_registry: SessionRegistry
) -> None:
    host = f"api{char}x.example"
    with pytest.raises(ValueError) as caught:
        Api(f"http://{host}/v1/", registry=bad_registry)
    assert names_the_host(str(caught.value), host), str(caught.value)
    assert_untouched(bad_registry)
    await bad_registry.close()
    assert_untouched(bad_registry)


@pytest.mark.parametrize("char", BAD_HOST_CHARACTERS, ids=[f"{ord(c):02x}" for c in BAD_HOST_CHARACTERS])
async def test_acquire_with_a_bad_host_is_refused_and_counts_nothing(
    char: str, bad_registry: SessionRegistry
) -> None:
    host = f"api{char}x.example"
    try:
        session = await bad_registry.acquire(f"http://{host}/")
    except ValueError as exc:
        assert names_the_host(str(exc), host), str(exc)
    else:
        await bad_registry.release(session)
        pytest.fail(f"acquire() accepted the host {host!r} and handed out a session")
    assert_untouched(bad_registry)
    await bad_registry.close()
    assert_untouched(bad_registry)


@pytest.mark.parametrize("char", [" ", "<", "|", "^", "\x00"], ids=["20", "3c", "7c", "5e", "00"])
async def test_session_with_a_bad_host_is_refused_before_entering(
    char: str, bad_registry: SessionRegistry
) -> None:
    host = f"api{char}x.example"
    with pytest.raises(ValueError) as caught:
        bad_registry.session(f"https://{host}:8443/")
    assert names_the_host(str(caught.value), host), str(caught.value)
    assert_untouched(bad_registry)


async def test_a_bad_host_given_as_a_yarl_url_is_refused_too(bad_registry: SessionRegistry) -> None:
    url = URL("http://a b.example/")
    assert url.raw_host == "a b.example"  # yarl itself lets it through
    with pytest.raises(ValueError, match=r"a b\.example"):
        Api(url, registry=bad_registry)
    try:
        session = await bad_registry.acquire(url)
    except ValueError as exc:
        assert "a b.example" in str(exc)
    else:
        await bad_registry.release(session)
        pytest.fail("acquire() accepted the host 'a b.example' and handed out a session")
    assert_untouched(bad_registry)


async def test_a_bad_host_does_not_break_a_registry_already_in_use(bad_registry: SessionRegistry) -> None:
    good = await bad_registry.acquire("http://good.example")
    try:
        with pytest.raises(ValueError):
            bad = await bad_registry.acquire("http://bad host.example")
            await bad_registry.release(bad)
        stats = bad_registry.stats()
        assert (stats.open, stats.in_use, stats.created, stats.acquired) == (1, 1, 1, 1)
        assert [s.origin for s in stats.sessions] == ["http://good.example"]
    finally:
        await bad_registry.release(good)
    await bad_registry.close()
    assert good.closed


# -- percent-encoded segments --------------------------------------------------------------------------


@pytest.fixture
async def raw_server() -> AsyncIterator[TestServer]:
    """Answers every request with the raw (still percent-encoded) path it received."""

    async def raw(request: web.Request) -> web.Response:
        return web.Response(text=request.raw_path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", raw)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


JOINS = [
    # (base path, relative URL, what the server must receive)
    ("/api/v4/", "projects/group%2Fproject", "/api/v4/projects/group%2Fproject"),
    (
        "/api/v4/",
        "projects/group%2Fproject/issues?state=open",
        "/api/v4/projects/group%2Fproject/issues?state=open",
    ),
    ("/api/v4/projects/group%2Fproject/", "issues", "/api/v4/projects/group%2Fproject/issues"),
    (
        "/api/v4/projects/group%2Fproject/",
        "files/a%2Fb.txt",
        "/api/v4/projects/group%2Fproject/files/a%2Fb.txt",
    ),
]


@pytest.mark.parametrize(("base_path", "relative", "expected"), JOINS)
async def test_relative_urls_keep_percent_encoded_segments_as_aiohttp_base_url_does(
    raw_server: TestServer, registry: SessionRegistry, base_path: str, relative: str, expected: str
) -> None:
    base = str(raw_server.make_url("/")).rstrip("/") + base_path
    async with aiohttp.ClientSession(base_url=base) as session, session.get(relative) as resp:
        assert await resp.text() == expected  # aiohttp's own join: the reference
    api = Api(base, registry=registry)
    assert await api.raw_path(relative) == expected  # unattached
    async with api:
        assert await api.raw_path(relative) == expected  # attached


@pytest.mark.parametrize(
    ("base_path", "relative", "expected"),
    [
        ("/api/v4/projects/group%2Fproject", "issues", "/api/v4/projects/group%2Fproject/issues"),
        ("/api/v4", "projects/group%2Fproject", "/api/v4/projects/group%2Fproject"),
    ],
)
async def test_a_base_url_without_trailing_slash_keeps_its_encoded_segments(
    raw_server: TestServer, registry: SessionRegistry, base_path: str, relative: str, expected: str
) -> None:
    base = str(raw_server.make_url("/")).rstrip("/") + base_path
    api = Api(base, registry=registry)
    assert await api.raw_path(relative) == expected
    async with api:
        assert await api.raw_path(relative) == expected
