"""Event loops: sessions never cross loops, and nothing is kept for a loop that has closed."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import aiohttp
import pytest
from aiohttp import web

import asynctools
from asynctools import AbstractSessionContainer, SessionRegistry, attach_session


class Echo(AbstractSessionContainer):
    @attach_session
    async def path(self, url: str, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None
        async with session.get(url) as resp:
            return str((await resp.json())["path"])


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    return app


def open_sessions() -> list[aiohttp.ClientSession]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed]


def test_a_hundred_asyncio_runs_in_a_row_leave_nothing_behind() -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    sessions: list[int] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        runner, url = await serve(echo_app())
        try:
            echo = Echo(url)
            async with echo:  # the default registry, never closed by hand
                assert await echo.path(url + "/a") == "/a"
                sessions.append(id(echo.session))
            assert await echo.path(url + "/b") == "/b"  # warm: the idle session comes back
            assert asynctools.default_registry.stats().created == 1
        finally:
            await runner.cleanup()

    for _ in range(100):
        asyncio.run(main())
    assert asynctools.default_registry._pools == {}
    assert open_sessions() == []
    gc.collect()
    assert [ref() for ref in loops if ref() is not None] == []


def test_threads_with_their_own_loops_share_one_registry_safely() -> None:
    registry = SessionRegistry()
    handed_out: dict[int, list[aiohttp.ClientSession]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    async def main(index: int) -> None:
        runner, url = await serve(echo_app())
        try:
            start.wait()  # all eight loops use the registry at the same time
            echo = Echo(url, registry=registry)
            paths = await asyncio.gather(*(echo.path(f"{url}/{index}/{i}") for i in range(50)))
            assert paths == [f"/{index}/{i}" for i in range(50)]
            async with registry.session() as session:
                handed_out[index] = [session]
                assert session._loop is asyncio.get_running_loop()
        finally:
            await runner.cleanup()

    def run(index: int) -> None:
        try:
            asyncio.run(main(index))
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({id(sessions[0]) for sessions in handed_out.values()}) == 8
    assert registry._pools == {}
    assert open_sessions() == []


# The careless half of this test leaks a session on purpose: aiohttp reports it when it is collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_loop_closed_without_shutdown_is_forgotten_by_the_next_loop() -> None:
    registry = SessionRegistry()
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(registry.acquire())
    loop.run_until_complete(registry.release(session))
    # The documented way: close the registry on the loop before closing the loop.
    loop.run_until_complete(registry.close())
    assert session.closed
    assert registry._pools == {}
    loop.close()

    careless = asyncio.new_event_loop()
    careless.run_until_complete(registry.acquire())
    assert list(registry._pools) == [careless]
    careless.close()  # wrong: the session is left behind, and the registry still knows the loop...
    ref = weakref.ref(careless)
    del careless

    async def later() -> None:
        await registry.acquire()  # ...but the next loop drops the dead one
        assert len(registry._pools) == 1
        await registry.close()

    asyncio.run(later())
    gc.collect()
    assert ref() is None


# The careless loop leaves its session unclosed on purpose: aiohttp reports it when it is collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_releases_from_a_loop_closed_without_shutdown_only_count_down() -> None:
    registry = SessionRegistry()

    class Api(AbstractSessionContainer):
        pass

    api = Api("http://a.example", registry=registry)
    careless = asyncio.new_event_loop()
    session = careless.run_until_complete(registry.acquire("http://b.example"))

    async def attach() -> None:
        await api.start_session()

    careless.run_until_complete(attach())
    careless.close()  # wrong, without shutdown_asyncgens(): nothing can run on that loop any more

    async def later() -> None:
        await registry.release(session)  # accepted, once: its loop is gone, so it only counts down
        with pytest.raises(ValueError, match="released more times"):
            await registry.release(session)
        async with api:  # the attachment of the dead loop is dropped, a fresh one made here
            assert api.session is not None and api.session is not session
        await registry.close()

    asyncio.run(later())
