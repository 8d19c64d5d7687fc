"""Run with `python -X dev`: use containers, never close the registry, leave a generator paused."""

import asyncio
import sys

import aiohttp
from aiohttp import web

import asynctools

kept = []  # keeps the paused generator alive until the loop shuts down


class Api(asynctools.AbstractSessionContainer):
    @asynctools.attach_session
    async def text(self, path: str, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None
        async with session.get(path) as resp:
            return await resp.text()

    @asynctools.attach_session
    async def lines(self, path: str, session: aiohttp.ClientSession | None = None):
        assert session is not None
        async with session.get(path) as resp:
            async for line in resp.content:
                yield line


async def main(mode: str) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello\n" * 20000)

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    api = Api(url)
    async with api:
        assert (await api.text(url)).startswith("hello")
    assert (await Api(url, raise_for_status=True).text(url)).startswith("hello")  # unattached
    if mode == "paused-generator":
        gen = Api(url, headers={"X-Gen": "1"}).lines(url)
        assert await gen.__anext__() == b"hello\n"
        kept.append(gen)
    if mode == "attached":
        await api.start_session()
    print(asynctools.default_registry.stats().open, "sessions open at exit", flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    print("pools left:", len(asynctools.default_registry._pools))
