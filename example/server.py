"""The maths server: ``GET /squares?values=1,2,3`` squares each value through one shared session."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

import asynctools

from .maths import MathRequests
from .upstream import make_upstream_app

__all__ = ("MAX_VALUES", "make_app")

MAX_VALUES = 1000
REGISTRY = web.AppKey("registry", asynctools.SessionRegistry)
API_URL = web.AppKey("api_url", str)


def bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def parse_values(raw: str | None) -> list[str]:
    """The comma-separated values of the query; raises ``ValueError`` naming the problem."""
    if raw is None or not raw.strip():
        raise ValueError("missing or empty 'values': pass numbers such as ?values=1,2,3")
    values = [value.strip() for value in raw.split(",")]
    if len(values) > MAX_VALUES:
        raise ValueError(f"{len(values)} values given, at most {MAX_VALUES} are allowed")
    for value in values:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
    return values


async def squares(request: web.Request) -> web.Response:
    try:
        values = parse_values(request.query.get("values"))
    except ValueError as exc:
        return bad_request(str(exc))
    maths = MathRequests(request.app[API_URL], registry=request.app[REGISTRY])
    try:
        async with maths:
            results = await asyncio.gather(*(maths.get_square(v) for v in values))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        message = f"the math API at {request.app[API_URL]} failed: {type(exc).__name__}: {exc}"
        return web.json_response({"error": message}, status=502)
    return web.json_response({"values": values, "results": results})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(dataclasses.asdict(request.app[REGISTRY].stats()))


def make_app(
    upstream: str | None = None, registry: asynctools.SessionRegistry | None = None
) -> web.Application:
    """The maths app; with no *upstream*, it also serves its own math API on a free loopback port."""
    app = web.Application()
    app[REGISTRY] = registry if registry is not None else asynctools.SessionRegistry()
    app.router.add_get("/squares", squares)
    app.router.add_get("/stats", stats)

    async def embedded_upstream(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(make_upstream_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        app[API_URL] = f"http://{host}:{port}/v4"
        yield
        await runner.cleanup()

    if upstream is None:
        app.cleanup_ctx.append(embedded_upstream)
    else:
        app[API_URL] = upstream
    app.cleanup_ctx.append(app[REGISTRY].cleanup_ctx)
    return app
