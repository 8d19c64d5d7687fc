"""Threads and clocks: the idle timer copes with a clock that moves between reads; threads share a registry.

The idle timer expires idle sessions whatever the loop's clock does between two reads (driven here by an
event loop whose ``time()`` jumps forward on every call): idle sessions still close and nothing reaches the
loop's exception handler. Sixteen threads, each running its own loop, acquire, release and close on one
registry against one server: no exception, no loop error report, every count back to zero.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import aiohttp
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session


class JumpyLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps forward by *step* seconds each time it is read (once started)."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step
        self.offset = 0.0
        self.jumping = False

    def time(self) -> float:
        if self.jumping:
            self.offset += self.step
        return super().time() + self.offset


def test_idle_sessions_close_when_the_clock_moves_between_two_reads() -> None:
    loop = JumpyLoop(step=0.4)
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reports.append(context))
    registry = SessionRegistry(idle_timeout=1.0)

    async def main() -> list[aiohttp.ClientSession]:
        sessions = [
            await registry.acquire("http://clock.example", headers={"X-Key": str(i)}) for i in range(6)
        ]
        loop.jumping = True
        for session in sessions:
            await registry.release(session)
            await asyncio.sleep(0)  # each goes idle at a different time of the jumpy clock
        # Wait on the sessions themselves (stats() would expire them itself), for at most 1,000 seconds
        # of the jumpy clock (a few thousand reads), or until the loop reports an error.
        deadline = loop.time() + 1000
        while not all(s.closed for s in sessions) and not reports and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        return sessions

    try:
        sessions = loop.run_until_complete(main())
        assert [str(r.get("exception") or r.get("message")) for r in reports] == []
        assert all(s.closed for s in sessions), "idle sessions left open past their timeout"
    finally:
        loop.jumping = False
        loop.run_until_complete(registry.close())
        loop.close()


class Api(AbstractSessionContainer):
    @attach_session
    async def echo(self, tag: str, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/echo"), params={"tag": tag}) as resp:
            return str((await resp.json())["query"]["tag"])


THREADS = 16
ITERATIONS = 20


async def test_sixteen_threads_with_their_own_loops_share_one_registry(upstream: Upstream) -> None:
    registry = SessionRegistry(idle_timeout=0.005, max_idle=3)  # idle sessions expire and are evicted too
    url = upstream.url()
    errors: list[str] = []
    finals: dict[int, tuple[int, int, int, list[str]]] = {}
    start = threading.Barrier(THREADS)

    async def work(index: int) -> None:
        reports: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, c: reports.append(str(c.get("message"))))
        start.wait()  # every thread uses the registry at once
        api = Api(url, registry=registry)
        for i in range(ITERATIONS):
            other = Api(url, registry=registry, headers={"X-Key": str(i % 5)})
            async with api:
                got = await asyncio.gather(api.echo(f"{index}-{i}"), other.echo(f"{index}-{i}-other"))
                # gather() returns a list; typeshed types it as a tuple.
                assert got == [f"{index}-{i}", f"{index}-{i}-other"]  # type: ignore[comparison-overlap]
            session = await registry.acquire(url, headers={"X-Thread": str(index % 3)})
            try:
                async with session.get(url.rstrip("/") + "/echo") as resp:
                    assert resp.status == 200
            finally:
                await registry.release(session)
            async with registry.session(url) as shared, shared.get(url.rstrip("/") + "/echo") as resp:
                assert resp.status == 200
            if i % 7 == 6:
                await registry.close()
        in_use = registry.stats().in_use
        await registry.close()
        stats = registry.stats()
        finals[index] = (in_use, stats.open, stats.in_use, reports)

    def run(index: int) -> None:
        try:
            asyncio.run(work(index))
        except BaseException as exc:  # reported in the test's own thread
            errors.append(f"thread {index}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i,), name=f"registry-user-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()

    def join_all() -> None:
        for thread in threads:
            thread.join()

    await asyncio.to_thread(join_all)  # this loop keeps serving the threads' requests meanwhile
    assert errors == []
    assert finals == {i: (0, 0, 0, []) for i in range(THREADS)}
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed] == []
    assert registry.stats().open == 0
