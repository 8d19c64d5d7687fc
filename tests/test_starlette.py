"""SessionRegistry.lifespan with a real Starlette app served by uvicorn on loopback, called with aiohttp.

The server runs in the test's own loop (``uvicorn.Server.serve`` as a task, on a socket bound to a free
loopback port); its routes call a container whose requests go to the loopback ``upstream``. Stopping the
server runs the lifespan's shutdown, which must leave the registry with no open session.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import uvicorn
from conftest import Upstream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asynctools


class Echo(asynctools.AbstractSessionContainer):
    @asynctools.attach_session
    async def echo(self, path: str, session: aiohttp.ClientSession | None = None) -> Any:
        assert session is not None
        async with session.get(f"{self.base_url}{path}") as resp:
            return await resp.json()


def make_app(upstream: Upstream, registry: asynctools.SessionRegistry, lifespan: Any) -> Starlette:
    async def proxy(request: Request) -> JSONResponse:
        api = Echo(upstream.origin, registry=registry)
        body = await api.echo(f"/echo/{request.path_params['tail']}")
        return JSONResponse({"upstream_path": body["path"]})

    return Starlette(routes=[Route("/proxy/{tail:path}", proxy)], lifespan=lifespan)


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve *app* with uvicorn in this loop on a free loopback port; yield its URL, then shut it down."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", http="h11", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():  # start-up failed (the lifespan raised, say): show why
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def get_twice(url: str) -> list[Any]:
    async with aiohttp.ClientSession() as client:
        bodies = []
        for tail in ("a", "b"):
            async with client.get(f"{url}/proxy/{tail}") as resp:
                assert resp.status == 200, await resp.text()
                bodies.append(await resp.json())
        return bodies


async def test_the_lifespan_closes_the_registrys_sessions_at_shutdown(upstream: Upstream) -> None:
    registry = asynctools.SessionRegistry()
    app = make_app(upstream, registry, registry.lifespan)
    async with serve(app) as url:
        assert await get_twice(url) == [{"upstream_path": "/echo/a"}, {"upstream_path": "/echo/b"}]
        stats = registry.stats()
        # One shared session served both requests and is kept warm: there is something to close.
        assert (stats.open, stats.in_use, stats.created, stats.acquired) == (1, 0, 1, 2)
        assert len(upstream.peers) == 1  # one keep-alive connection to the upstream
    assert registry.stats().open == 0
    # (the autouse guard fails this test on an "Unclosed client session" or a session left open)


async def test_a_lifespan_of_your_own_nests_the_registrys(upstream: Upstream) -> None:
    registry = asynctools.SessionRegistry()
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        async with registry.lifespan(app):
            yield
            events.append(f"shutdown with {registry.stats().open} open")
        events.append(f"after the registry's lifespan: {registry.stats().open} open")

    async with serve(make_app(upstream, registry, lifespan)) as url:
        await get_twice(url)
        assert events == ["startup"]
    assert events == ["startup", "shutdown with 1 open", "after the registry's lifespan: 0 open"]


async def test_without_the_lifespan_the_session_outlives_the_server(upstream: Upstream) -> None:
    # The control: what the lifespan closes in the tests above is really left open without it.
    registry = asynctools.SessionRegistry()
    async with serve(make_app(upstream, registry, None)) as url:
        await get_twice(url)
    try:
        assert registry.stats().open == 1
    finally:
        await registry.close()


async def test_the_default_registry_ties_to_an_app_the_same_way(upstream: Upstream) -> None:
    registry = asynctools.default_registry
    async with serve(make_app(upstream, registry, registry.lifespan)) as url:
        await get_twice(url)
        assert registry.stats().open == 1
    assert registry.stats().open == 0
