"""The aiohttp-asynctools 0.1.3 README's MathRequests examples, run as written against a local math API.

Each snippet below is copied from the 0.1.3 README; only the math API's address is swapped for a
loopback stand-in, since tests never reach the internet.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from conftest import Upstream

import asynctools

if TYPE_CHECKING:
    from pytest_aiohttp import AiohttpClient

SEED_MATH_API = "http://api.mathjs.org/v4"

USAGE = """
import asynctools  # 1.

MATH_API_URL = "http://api.mathjs.org/v4"

class MathRequests(asynctools.AbstractSessionContainer):  # 2.

    @asynctools.attach_session  # 3.
    async def get_text(self, url, params, session=None):
        async with session.get(url, params=params) as response:
            return await response.text()

    async def get_square(self, value):
        params = {
            "expr" : f"{value}^2"
        }
        return await self.get_text(MATH_API_URL, params=params)
"""

FINAL_SOLUTION = """
import asyncio
import asynctools # 1) Import

# 2) Extends the abstract class that will handle the aiohttp session for you:
class MathRequests(asynctools.AbstractSessionContainer):
    def __init__(self):
        # 2') (optional) initilise with any 'aiohttp.ClientSession' argument
        super().__init__(raise_for_status=True)
    # 3) This decorator will automatically fill the session argument:
    @asynctools.attach_session
    async def get_text(self, url, params, session=None):  # 4) Add the 'session' argument
        async with session.get(url, params=params) as response:
            return await response.text()
    async def get_square(self, value):
        return await self.get_text("http://api.mathjs.org/v4", params={'expr' : '{}^2'.format(value)})

from aiohttp import web
routes = web.RouteTableDef()

@routes.get('/squares')
async def index(request):
    tasks = []
    data = request.query
    values = data['values'].split(',')
    async with MathRequests() as maths: # Use the object as a context manager (async with <context_manager> as <name>)
        results = await asyncio.gather(*[ maths.get_square(v) for v in values ])
    return web.json_response({ 'values':values, 'results':results })

maths_app = web.Application()
maths_app.add_routes(routes)
"""

WITHOUT_ASYNC_WITH = """
@routes.get('/squares')
async def index(request):
    tasks = []
    data = request.query
    values = data['values'].split(',')
    maths = MathRequests()
    results = await asyncio.gather(*[ maths.get_square(v) for v in values ])
    return web.json_response({ 'values':values, 'results':results })
"""

EXPLICIT_SESSION = """
@routes.get('/maths')
async def index(request):
    tasks = []
    data = request.query
    values = data['values'].split(',')
    maths = MathRequests()
    maths.start_session()
    results = await asyncio.gather(*[ maths.get_square(v) for v in values ])
    maths.close_session()
    return web.json_response({ 'values':values, 'results':results })
"""

EXPECTED = {
    "values": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"],
    "results": ["1", "4", "9", "16", "25", "36", "49", "64", "81", "100"],
}


def run_snippet(source: str, math_api: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    namespace = {} if namespace is None else namespace
    exec(compile(source.replace(SEED_MATH_API, math_api), "<0.1.3 README>", "exec"), namespace)
    return namespace


async def test_usage_snippet(upstream: Upstream) -> None:
    ns = run_snippet(USAGE, upstream.url("/v4"))
    maths = ns["MathRequests"]()
    assert await asyncio.gather(*(maths.get_square(v) for v in range(1, 11))) == EXPECTED["results"]
    async with maths:
        assert await maths.get_square(12) == "144"
    assert asynctools.default_registry.stats().created == 1


async def test_final_solution_serves_the_readmes_curl(
    aiohttp_client: AiohttpClient, upstream: Upstream
) -> None:
    ns = run_snippet(FINAL_SOLUTION, upstream.url("/v4"))
    client = await aiohttp_client(ns["maths_app"])
    resp = await client.get("/squares", params={"values": "1,2,3,4,5,6,7,8,9,10"})
    assert resp.status == 200
    assert await resp.json() == EXPECTED
    assert asynctools.default_registry.stats().created == 1
    assert len(upstream.peers) <= 10


async def test_without_async_with_and_with_explicit_sessions(
    aiohttp_client: AiohttpClient, upstream: Upstream
) -> None:
    ns = run_snippet(FINAL_SOLUTION, upstream.url("/v4"))
    routes = ns["web"].RouteTableDef()
    ns["routes"] = routes
    run_snippet(WITHOUT_ASYNC_WITH, upstream.url("/v4"), ns)
    run_snippet(EXPLICIT_SESSION, upstream.url("/v4"), ns)
    app = ns["web"].Application()
    app.add_routes(routes)
    client = await aiohttp_client(app)
    for path in ("/squares", "/maths", "/squares"):
        resp = await client.get(path, params={"values": "1,2,3,4,5,6,7,8,9,10"})
        assert await resp.json() == EXPECTED
    stats = asynctools.default_registry.stats()
    assert (stats.created, stats.in_use) == (1, 0)  # one warm session served all three requests
