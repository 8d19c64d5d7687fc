"""Run as `python -X dev -W error::ResourceWarning shutdown_scenarios.py MODE URL` (URL: an /echo server).

Each mode ends a loop one way while a task waits and async generators are paused; their `finally:`
blocks make requests through attached and unattached containers and print what they got, one
"finally <who>: ok <tag>" (or "failed <error>") line each. Then the script prints how many
ClientSessions are still open.

asyncio-run   asyncio.run(main)
runner        asyncio.Runner (3.11+)
run-app       aiohttp.web.run_app, stopped by SIGINT
by-hand       run_until_complete(main); cancel and gather the tasks; shutdown_asyncgens(); close()
old-pytest-asyncio  run_until_complete(main); shutdown_asyncgens(); close(): no task cancelled
churn-ttl     SessionRegistry(idle_timeout=0.001) churning through keys right before main returns
churn-lru     SessionRegistry(max_idle=1) churning through keys right before main returns
wait-all      use containers, let idle sessions close, then print the tasks left besides main's own
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
from aiohttp import web

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session

MODE, URL = sys.argv[1], sys.argv[2]
kept: list[Any] = []  # the waiting task and the paused generators, alive until the loop shuts down


async def via(session: aiohttp.ClientSession, tag: str) -> str:
    async with session.get(URL.rstrip("/") + "/echo", params={"tag": tag}) as resp:
        resp.raise_for_status()
        return str((await resp.json())["query"]["tag"])


class Api(AbstractSessionContainer):
    @attach_session
    async def echo(self, tag: str, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None
        return await via(session, tag)

    async def echo_by_helper(self, tag: str) -> str:
        async with self.get("/echo", params={"tag": tag}) as resp:
            resp.raise_for_status()
            return str((await resp.json())["query"]["tag"])

    @attach_session
    async def paused(self, session: aiohttp.ClientSession | None = None) -> AsyncIterator[str]:
        assert session is not None
        try:
            yield "first"
            await asyncio.get_running_loop().create_future()
        finally:
            await record("decorated generator", via(session, "dgen"))


async def record(who: str, request: Awaitable[str]) -> None:
    try:
        print(f"finally {who}: ok {await request}", flush=True)
    except BaseException as exc:  # printed for the test to see; the script goes on
        print(f"finally {who}: failed {exc!r}", flush=True)


async def waiting_task(ready: asyncio.Event) -> None:
    attached = Api(URL, headers={"X-Who": "task"})
    async with attached:
        await attached.echo("warm-up")
        try:
            ready.set()
            await asyncio.get_running_loop().create_future()  # cancelled at shutdown
        finally:
            await record("task attached", attached.echo("task-attached"))
            await record("task unattached", Api(URL).echo("task-unattached"))
            await record("task helper", Api(URL, headers={"X-Helper": "1"}).echo_by_helper("task-helper"))


async def paused_generator() -> AsyncIterator[int]:
    attached = Api(URL, headers={"X-Who": "generator"})
    await attached.start_session()
    try:
        yield 1
        await asyncio.get_running_loop().create_future()
    finally:
        await record("generator attached", attached.echo("gen-attached"))
        await record("generator unattached", Api(URL).echo("gen-unattached"))
        await attached.close_session()


async def leave_users_behind(with_task: bool) -> None:
    if with_task:
        ready = asyncio.Event()
        kept.append(asyncio.create_task(waiting_task(ready)))
        await ready.wait()
    generator = paused_generator()
    assert await generator.__anext__() == 1
    decorated = Api(URL, headers={"X-Who": "decorated"}).paused()
    assert await decorated.__anext__() == "first"
    kept.extend([generator, decorated])


async def churn(registry: SessionRegistry) -> None:
    for round_ in range(3):
        for key in range(12):
            api = Api(URL, registry=registry, headers={"X-Key": str(key)})
            await api.echo(f"churn-{round_}-{key}")
        await asyncio.sleep(0.002)  # let idle ones expire (churn-ttl) while others are used
    async with Api(URL, registry=registry, headers={"X-Last": "1"}) as last:
        await last.echo("last")  # released in the very last tick of main
    session = await registry.acquire(URL, headers={"X-Acquired": "1"})
    await registry.release(session)
    print("churn: ok", flush=True)


async def wait_all() -> None:
    registry = SessionRegistry(idle_timeout=0.05)
    async with Api(URL, registry=registry) as api:
        await api.echo("attached")
    await Api(URL, registry=registry, headers={"X-Other": "1"}).echo("unattached")
    await Api(URL).echo("default-registry")  # the default registry's session stays idle
    async with registry.session(URL) as session:
        await via(session, "lease")
    while registry.stats().open:  # noqa: ASYNC110 (until every idle session of `registry` is closed)
        await asyncio.sleep(0.01)
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for _ in range(100):  # ticks, not time: a task that ends by itself is gone long before this
        if not others:
            break
        await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task()}
    print("other tasks:", sorted(f"{t.get_name()} {t.get_coro()!r}" for t in others), flush=True)
    if not others:
        await asyncio.gather(*others)  # what "wait for every other task" code does


async def main() -> None:
    if MODE in ("asyncio-run", "runner", "by-hand"):
        await leave_users_behind(with_task=True)
    elif MODE == "old-pytest-asyncio":
        await leave_users_behind(with_task=False)
    elif MODE == "churn-ttl":
        await churn(SessionRegistry(idle_timeout=0.001))
    elif MODE == "churn-lru":
        await churn(SessionRegistry(max_idle=1))
    elif MODE == "wait-all":
        await wait_all()
    else:
        raise SystemExit(f"unknown mode {MODE!r}")


def run_app() -> None:
    async def on_startup(app: web.Application) -> None:
        async def start() -> None:
            await leave_users_behind(with_task=True)
            signal.raise_signal(signal.SIGINT)  # run_app turns it into GracefulExit and shuts down

        kept.append(asyncio.create_task(start()))

    app = web.Application()
    app.on_startup.append(on_startup)
    web.run_app(app, host="127.0.0.1", port=0, print=None)


def by_hand(cancel_tasks: bool) -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    if cancel_tasks:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


if __name__ == "__main__":
    if MODE == "runner":
        if sys.version_info < (3, 11):  # (told to mypy, which checks this file on 3.10 too)
            raise SystemExit("asyncio.Runner needs Python 3.11 or later")
        with asyncio.Runner() as runner:
            runner.run(main())
    elif MODE == "run-app":
        run_app()
    elif MODE == "by-hand":
        by_hand(cancel_tasks=True)
    elif MODE == "old-pytest-asyncio":
        by_hand(cancel_tasks=False)
    else:
        asyncio.run(main())
    kept.clear()
    gc.collect()
    still_open = sum(isinstance(o, aiohttp.ClientSession) and not o.closed for o in gc.get_objects())
    print("open sessions after exit:", still_open, flush=True)
