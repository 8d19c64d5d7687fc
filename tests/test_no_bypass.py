"""Every request to a site with a policy obeys it: per-request ``middlewares=`` and host spellings too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from asynctools import PolicyBypassError, RateLimit, Retry, SessionRegistry, SitePolicy
from asynctools._keys import parse_origin

FAST_RETRY = Retry(attempts=3, backoff=0.001, max_backoff=0.001)


class Busy:
    """A loopback server whose /busy answers 503 twice, then 200 (per tag), counting arrivals."""

    def __init__(self) -> None:
        self.arrivals: dict[str, int] = {}

    async def busy(self, request: web.Request) -> web.Response:
        tag = request.query.get("tag", "")
        self.arrivals[tag] = self.arrivals.get(tag, 0) + 1
        return web.Response(status=503 if self.arrivals[tag] <= 2 else 200, text="busy")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/busy?tag={request.query.get('tag', '')}")


@pytest.fixture
async def busy() -> AsyncIterator[tuple[Busy, str]]:
    state = Busy()
    app = web.Application()
    app.router.add_get("/busy", state.busy)
    app.router.add_get("/redirect", state.redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("/")).rstrip("/")
    finally:
        await server.close()


async def logging_middleware(
    req: aiohttp.ClientRequest, handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
) -> aiohttp.ClientResponse:
    return await handler(req)


async def test_per_request_middlewares_cannot_drop_the_sites_policy(busy: tuple[Busy, str]) -> None:
    server, origin = busy
    registry = SessionRegistry(policies={origin: SitePolicy(retry=FAST_RETRY)})
    async with registry.session(origin) as session:
        async with session.get(f"{origin}/busy?tag=plain") as resp:
            assert resp.status == 200  # the policy retried the two 503s
        for tag, middlewares in (("mine", (logging_middleware,)), ("none", ())):
            with pytest.raises(PolicyBypassError, match="middlewares=") as caught:
                await session.get(f"{origin}/busy?tag={tag}", middlewares=middlewares)
            assert origin in str(caught.value) and "policy" in str(caught.value)
            assert tag not in server.arrivals  # refused before anything was sent
        # A redirect hop into the site is refused the same way; the session's own middlewares still run.
        with pytest.raises(PolicyBypassError):
            await session.get(f"{origin}/redirect?tag=hop", middlewares=())
        async with session.get(f"{origin}/busy?tag=after") as resp:
            assert resp.status == 200
    assert server.arrivals == {"plain": 3, "after": 3}
    (site,) = registry.stats().sites
    assert site.requests == 2 and site.attempts == 6
    await registry.close()


async def test_per_request_middlewares_are_fine_where_no_policy_applies(busy: tuple[Busy, str]) -> None:
    server, origin = busy
    registry = SessionRegistry(policies={"http://other.example": SitePolicy(retry=FAST_RETRY)})
    async with (
        registry.session(origin) as session,
        session.get(f"{origin}/busy?tag=t", middlewares=(logging_middleware,)) as resp,
    ):
        assert resp.status == 503  # no policy for this site: no retry, and no refusal
    async with (
        SessionRegistry() as plain,
        plain.session(origin) as session,
        session.get(f"{origin}/busy?tag=u", middlewares=()) as resp,
    ):
        assert resp.status == 503
    assert server.arrivals == {"t": 1, "u": 1}
    await registry.close()


@pytest.mark.parametrize(
    "spelling",
    ["http://bücher.example./a", "HTTP://BÜCHER.EXAMPLE/b", "http://xn--bcher-kva.example.:80/c"],
)
def test_spellings_of_one_host_are_one_origin(spelling: str) -> None:
    assert parse_origin(spelling) == ("http", "xn--bcher-kva.example", 80)


async def test_a_trailing_dot_does_not_escape_the_sites_rate_limit(busy: tuple[Busy, str]) -> None:
    _, origin = busy
    port = origin.rsplit(":", 1)[1]
    site = f"http://localhost:{port}"
    registry = SessionRegistry(policies={site: SitePolicy(retry=None, rate=RateLimit(1, per=60))})
    async with registry.session(site) as session:
        async with session.get(f"{site}/busy") as resp:  # the window's one place
            assert resp.status == 503
        for spelling in (f"http://localhost.:{port}/busy", f"HTTP://LOCALHOST.:{port}/busy"):
            task = asyncio.ensure_future(session.get(spelling))
            while not task.done() and registry.stats().sites[0].rate_waiting == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.001)  # (the figure is polled: no event says "waiting")
            # Waiting for the window, not sent (a request let through would fail: "localhost." has no
            # address here, or be answered).
            assert not task.done() and registry.stats().sites[0].rate_waiting == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    await registry.close()


class TaggedRequest(aiohttp.ClientRequest):
    """A user's own request class: it stays theirs under a policy."""


async def test_a_users_request_class_and_a_policy_stated_later_are_policed_too(
    busy: tuple[Busy, str],
) -> None:
    server, origin = busy
    registry = SessionRegistry()
    async with (
        registry.session(origin, request_class=TaggedRequest) as session,
        session.get(f"{origin}/busy?tag=before", middlewares=()) as resp,
    ):
        assert resp.status == 503  # no policy yet: nothing to obey
    registry.set_policy(origin, SitePolicy(retry=FAST_RETRY))
    async with registry.session(origin, request_class=TaggedRequest) as session:
        with pytest.raises(PolicyBypassError):
            await session.get(f"{origin}/busy?tag=later", middlewares=(logging_middleware,))
        sent: list[type[aiohttp.ClientRequest]] = []

        async def record(
            req: aiohttp.ClientRequest,
            handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
        ) -> aiohttp.ClientResponse:
            sent.append(type(req))
            return await handler(req)

    async with (
        registry.session(origin, request_class=TaggedRequest, middlewares=(record,)) as session,
        session.get(f"{origin}/busy?tag=kept") as resp,
    ):
        assert resp.status == 200
    # The user's middleware ran inside the policy, on each attempt, with requests of the user's class.
    assert len(sent) == 3 and all(issubclass(kind, TaggedRequest) for kind in sent)
    assert server.arrivals == {"before": 1, "kept": 3}
    await registry.close()
