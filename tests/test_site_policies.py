"""Site policies wired into the registry: every request to the origin obeys them, whatever the path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from asynctools import (
    AbstractSessionContainer,
    Retry,
    SessionRegistry,
    SitePolicy,
    attach_session,
)

FAST_RETRY = Retry(attempts=3, backoff=0.001, max_backoff=0.001)


class Flaky:
    """A loopback server whose /flaky answers 503 twice, then 200, per client tag; /slow counts overlap."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0
        self.server: TestServer | None = None

    async def flaky(self, request: web.Request) -> web.Response:
        tag = request.query.get("tag", "")
        self.failures[tag] = self.failures.get(tag, 0) + 1
        if self.failures[tag] <= 2:
            return web.Response(status=503, text="busy")
        return web.Response(text="ok")

    async def slow(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return web.Response(text="done")

    def url(self, path: str = "/") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))


@pytest.fixture
async def flaky() -> AsyncIterator[Flaky]:
    state = Flaky()
    app = web.Application()
    app.router.add_get("/flaky", state.flaky)
    app.router.add_get("/slow", state.slow)
    state.server = TestServer(app, host="127.0.0.1")
    await state.server.start_server()
    try:
        yield state
    finally:
        await state.server.close()


class FlakyApi(AbstractSessionContainer):
    """What make_api makes: a container with a decorated call to its site's /flaky."""

    async def flaky(self, tag: str, session: aiohttp.ClientSession | None = None) -> int:
        raise NotImplementedError


def make_api(base: str, site_policy: SitePolicy | None) -> type[FlakyApi]:
    class Api(FlakyApi):
        base_url = base  # type: ignore[assignment]  # the class attribute spelling
        policy = site_policy

        @attach_session
        async def flaky(self, tag: str, session: aiohttp.ClientSession | None = None) -> int:
            assert session is not None
            async with session.get(f"{base}/flaky", params={"tag": tag}) as resp:
                return resp.status

    return Api


async def test_a_containers_policy_covers_helpers_decorated_methods_and_registry_sessions(
    flaky: Flaky,
) -> None:
    registry = SessionRegistry()
    Api = make_api(flaky.url().rstrip("/"), SitePolicy(retry=FAST_RETRY))
    api = Api(registry=registry, headers={"X-Client": "one"})
    assert await api.flaky("decorated") == 200
    async with api.get("flaky", params={"tag": "helper"}) as resp:
        assert resp.status == 200
    async with (
        registry.session(flaky.url(), raise_for_status=True) as session,  # other options too
        session.get(flaky.url("/flaky"), params={"tag": "registry"}) as resp,
    ):
        assert resp.status == 200
    assert flaky.failures == {"decorated": 3, "helper": 3, "registry": 3}
    (site,) = registry.stats().sites
    assert site.retries["503"] == 6 and site.gave_up == 0
    await registry.close()


async def test_a_concurrency_limit_holds_across_every_session_of_the_origin(flaky: Flaky) -> None:
    registry = SessionRegistry(policies={flaky.url(): SitePolicy(retry=None, concurrency=1)})

    async def call(n: int) -> str:
        async with (
            registry.session(flaky.url(), headers={"X-N": str(n % 3)}) as session,
            session.get(flaky.url("/slow")) as resp,
        ):
            return await resp.text()

    assert await asyncio.gather(*(call(n) for n in range(6))) == ["done"] * 6
    assert registry.stats().created == 3  # three sessions (three header sets), one limit
    assert flaky.peak == 1
    await registry.close()


async def test_no_policy_means_no_retry_and_no_site_figures(flaky: Flaky) -> None:
    registry = SessionRegistry()
    async with (
        registry.session(flaky.url()) as session,
        session.get(flaky.url("/flaky"), params={"tag": "plain"}) as resp,
    ):
        assert resp.status == 503
    assert flaky.failures == {"plain": 1}
    assert registry.stats().sites == ()
    await registry.close()


async def test_conflicting_policies_for_one_origin_are_refused_and_change_nothing(flaky: Flaky) -> None:
    registry = SessionRegistry()
    first = SitePolicy(retry=FAST_RETRY)
    registry.set_policy(flaky.url(), first)
    registry.set_policy(flaky.url("/another/path"), SitePolicy(retry=FAST_RETRY))  # equal: accepted
    Other = make_api(flaky.url().rstrip("/"), SitePolicy(retry=None, concurrency=2))
    with pytest.raises(ValueError, match="already has the site policy"):
        Other(registry=registry)
    with pytest.raises(TypeError, match="must be a SitePolicy"):
        registry.set_policy(flaky.url(), "retry please")  # type: ignore[arg-type]
    async with (
        registry.session(flaky.url()) as session,
        session.get(flaky.url("/flaky"), params={"tag": "kept"}) as resp,
    ):
        assert resp.status == 200  # the first policy still rules
    await registry.close()


async def test_a_policy_stated_after_sessions_exist_applies_to_the_next_request(flaky: Flaky) -> None:
    registry = SessionRegistry()
    async with (
        registry.session(flaky.url()) as session,
        session.get(flaky.url("/flaky"), params={"tag": "before"}) as resp,
    ):
        assert resp.status == 503
    registry.set_policy(flaky.url(), SitePolicy(retry=FAST_RETRY))
    async with (
        registry.session(flaky.url()) as session,
        session.get(flaky.url("/flaky"), params={"tag": "after"}) as resp,
    ):
        assert resp.status == 200
    assert registry.stats().created == 2  # the idle session built without the policy was replaced
    await registry.close()


async def test_a_policy_needs_a_base_url_and_a_valid_site() -> None:
    NoSite = make_api("https://api.example.com", SitePolicy())
    NoSite.base_url = None
    with pytest.raises(ValueError, match="there is none"):
        NoSite(registry=SessionRegistry())
    with pytest.raises(ValueError, match="has no host"):
        SessionRegistry(policies={"/relative": SitePolicy()})


async def test_a_policy_finds_its_origin_however_the_request_reaches_it(flaky: Flaky) -> None:
    """Whatever session sends it and however its URL spells the origin, a request obeys the policy;
    another origin's requests through the same session do not."""
    other = TestServer(web.Application(), host="127.0.0.1")
    await other.start_server()
    registry = SessionRegistry(policies={flaky.url(): SitePolicy(retry=FAST_RETRY)})
    assert flaky.server is not None
    spelled = f"HTTP://127.0.0.1:{flaky.server.port}/flaky"
    async with registry.session(str(other.make_url("/"))) as session:  # a session of another origin
        async with session.get(spelled, params={"tag": "caps"}) as resp:
            assert resp.status == 200
        async with session.get(other.make_url("/flaky")) as resp:
            assert resp.status == 404  # no policy there: one attempt, nothing counted for it
    async with (
        registry.session() as anywhere,
        anywhere.get(flaky.url("/flaky"), params={"tag": "none"}) as resp,
    ):
        assert resp.status == 200
    assert flaky.failures == {"caps": 3, "none": 3}
    assert [site.origin for site in registry.stats().sites] == [flaky.url().rstrip("/")]
    await registry.close()
    await other.close()


async def test_one_site_spelled_two_ways_is_one_site(flaky: Flaky) -> None:
    """Two spellings of one origin (a host in capitals, kept as given by an encoded URL) are one site:
    one state, one limit, one figure."""
    assert flaky.server is not None
    port = flaky.server.port
    registry = SessionRegistry(policies={f"http://localhost:{port}": SitePolicy(retry=FAST_RETRY)})
    spellings = [
        URL(f"http://localhost:{port}/flaky?tag=lower"),
        URL.build(
            scheme="http", host="LocalHost", port=port, path="/flaky", query_string="tag=caps", encoded=True
        ),
    ]
    assert spellings[0].raw_authority != spellings[1].raw_authority
    async with registry.session() as session:
        for url in spellings:
            async with session.get(url) as resp:
                assert resp.status == 200
    assert flaky.failures == {"lower": 3, "caps": 3}
    [site] = registry.stats().sites
    assert (site.origin, site.requests, site.attempts) == (f"http://localhost:{port}", 2, 6)
    await registry.close()


async def test_a_policy_stated_later_applies_to_sessions_that_went_there_without_one(flaky: Flaky) -> None:
    """A site's lookup is kept (no policy: straight through), and made again once a policy is stated:
    the next request obeys it, through a session already held as well as through a new one."""
    other = TestServer(web.Application(), host="127.0.0.1")
    await other.start_server()
    registry = SessionRegistry(policies={str(other.make_url("/")): SitePolicy(retry=FAST_RETRY)})
    async with registry.session(flaky.url()) as held:
        for tag in ("before", "before"):  # the second one through the kept lookup
            async with held.get(flaky.url("/flaky"), params={"tag": tag}) as resp:
                assert resp.status == 503
        registry.set_policy(flaky.url(), SitePolicy(retry=FAST_RETRY))
        async with held.get(flaky.url("/flaky"), params={"tag": "held"}) as resp:
            assert resp.status == 200
    async with (
        registry.session(flaky.url()) as fresh,
        fresh.get(flaky.url("/flaky"), params={"tag": "fresh"}) as resp,
    ):
        assert resp.status == 200
    assert flaky.failures == {"before": 2, "held": 3, "fresh": 3}
    assert [site.requests for site in registry.stats().sites] == [2]
    await registry.close()
    await other.close()
