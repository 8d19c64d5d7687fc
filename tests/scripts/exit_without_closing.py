"""Run with `python -X dev`: use containers, never close the registry, and leave in one of these states.

idle              sessions idle in the registry
paused-generator  a decorated async generator paused mid-iteration
in-flight         a request still waiting on a server that never answers
raises            main() raising after using containers
attached          a container attached with start_session() and never closed (reported in debug mode)
"""

import asyncio
import socket
import sys
import threading
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

import asynctools

kept: list[object] = []  # keeps the paused generator alive until the loop shuts down


class Api(asynctools.AbstractSessionContainer):
    @asynctools.attach_session
    async def text(self, path: str, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None
        async with session.get(path) as resp:
            return await resp.text()

    @asynctools.attach_session
    async def lines(self, path: str, session: aiohttp.ClientSession | None = None) -> AsyncIterator[bytes]:
        assert session is not None
        async with session.get(path) as resp:
            async for line in resp.content:
                yield line


class SilentServer:
    """Accepts connections on loopback and never answers (in a thread, outside the loop)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.got_request = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.accepted.append(conn)
        conn.recv(65536)
        self.got_request.set()

    def close(self) -> None:
        for sock in [self.listener, *self.accepted]:
            sock.close()


async def main(mode: str, silent: SilentServer) -> None:
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
    if mode == "in-flight":
        silent_url = f"http://127.0.0.1:{silent.port}/"
        kept.append(asyncio.ensure_future(Api(silent_url).text(silent_url)))
        await asyncio.get_running_loop().run_in_executor(None, silent.got_request.wait)
    if mode == "attached":
        api.start_session()
    print(asynctools.default_registry.stats().open, "sessions open at exit", flush=True)
    await runner.cleanup()
    if mode == "raises":
        raise ValueError("boom")


if __name__ == "__main__":
    silent = SilentServer()
    try:
        asyncio.run(main(sys.argv[1], silent))
    finally:
        silent.close()
        print("pools left:", len(asynctools.default_registry._pools), flush=True)
