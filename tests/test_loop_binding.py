"""A session never leaves its loop, nor its process.

A container attached on one loop (``async with`` or ``start_session()``) and used on another (another
thread, a later ``asyncio.run()``, a forked child) never hands its session out there: on that loop it
behaves as an unattached container (``container.session`` is ``None`` there), or attaches anew if
entered there; an attachment whose loop has closed is dropped. After ``os.fork()`` the child gets fresh
sessions and the parent's attached session and its connections keep working.

The probes below refuse to send anything on a session they were not supposed to get, so that today's
symptom (using the other loop's or the parent's connection, which hangs) shows as a failed assertion.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import warnings
import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session

FORBIDDEN = "handed the forbidden session"


class Echo(AbstractSessionContainer):
    @attach_session
    async def echo(self, tag: str, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path(f"/echo/{tag}")) as resp:
            return str((await resp.json())["path"])

    @attach_session
    async def probe(self, tag: str, forbidden: object, session: aiohttp.ClientSession | None = None) -> str:
        """Echo *tag*, unless the call was handed *forbidden* (then send nothing and say so)."""
        assert session is not None and self.base_url is not None
        if session is forbidden:
            return FORBIDDEN
        async with session.get(self.base_url.with_path(f"/echo/{tag}")) as resp:
            return str((await resp.json())["path"])

    @attach_session
    async def probe_lines(
        self, forbidden: object, session: aiohttp.ClientSession | None = None
    ) -> AsyncIterator[str]:
        assert session is not None and self.base_url is not None
        if session is forbidden:
            yield FORBIDDEN
            return
        for tag in ("g1", "g2"):
            async with session.get(self.base_url.with_path(f"/echo/{tag}")) as resp:
                yield str((await resp.json())["path"])


class ThreadServer:
    """An aiohttp echo server on loopback, in a thread with its own loop (it survives the test's loops)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.url = ""
        self.thread = threading.Thread(target=self._run, name="test-echo-server")
        self.thread.start()
        self.started.wait()

    async def _start(self) -> web.AppRunner:
        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"path": request.path})

        app = web.Application()
        app.router.add_get("/{tail:.*}", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner

    def _run(self) -> None:
        runner = self.loop.run_until_complete(self._start())
        self.started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def describe(session: object, attached: object) -> str:
    return "None" if session is None else "the attached one" if session is attached else "another"


async def test_an_attached_container_is_unattached_on_another_threads_loop(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Echo(upstream.url(), registry=registry)
    async with api:
        attached = api.session
        assert attached is not None
        assert await api.echo("main") == "/echo/main"

        async def elsewhere() -> dict[str, Any]:
            seen: dict[str, Any] = {"session": describe(api.session, attached)}
            seen["call"] = await api.probe("thread", attached)
            seen["generator"] = [line async for line in api.probe_lines(attached)]
            if api.session is None:  # the helpers use the attached session directly: only then safe
                async with api.get("/echo/helper") as resp:
                    seen["helper"] = (await resp.json())["path"]
            seen["in_use_here"] = registry.stats().in_use
            return seen

        seen = await asyncio.to_thread(asyncio.run, elsewhere())
        assert seen["session"] == "None", (
            "container.session read on another loop is the attached session, not None"
        )
        assert seen["call"] == "/echo/thread", "a decorated call on another loop got the attached session"
        assert seen["generator"] == ["/echo/g1", "/echo/g2"]
        assert seen["helper"] == "/echo/helper"
        assert seen["in_use_here"] == 0
        assert api.session is attached  # still attached here, and still working
        assert await api.echo("main-after") == "/echo/main-after"
    assert registry.stats().in_use == 0


async def test_entering_on_another_loop_attaches_anew_there(
    registry: SessionRegistry, upstream: Upstream
) -> None:
    api = Echo(upstream.url(), registry=registry)
    await api.start_session()
    attached = api.session
    try:

        async def elsewhere() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            async with api:
                seen["entered"] = describe(api.session, attached)
                seen["call"] = await api.probe("entered", attached)
                seen["in_use_inside"] = registry.stats().in_use
            seen["after"] = describe(api.session, attached)
            seen["in_use_after"] = registry.stats().in_use
            return seen

        seen = await asyncio.to_thread(asyncio.run, elsewhere())
        assert seen["entered"] == "another", "async with on another loop kept the first loop's session"
        assert seen["call"] == "/echo/entered"
        assert seen["in_use_inside"] == 1 and seen["in_use_after"] == 0
        assert seen["after"] == "None"
        assert api.session is attached
        assert await api.echo("still") == "/echo/still"
        assert registry.stats().in_use == 1
    finally:
        await api.close_session()
    assert registry.stats().in_use == 0


def test_a_start_session_never_closed_works_in_every_later_asyncio_run() -> None:
    server = ThreadServer()
    registry = SessionRegistry()
    api = Echo(server.url, registry=registry)
    first_loop: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    try:

        async def first() -> None:
            first_loop.append(weakref.ref(asyncio.get_running_loop()))
            api.start_session()  # never closed: asyncio.run() ends with it attached
            assert await api.echo("first") == "/echo/first"

        asyncio.run(first())

        async def later(run: int) -> None:
            assert await api.echo(f"later{run}") == f"/echo/later{run}"  # a fresh session, not a closed one
            assert api.session is None, "an attachment whose loop has closed is still handed out"
            async with api:
                assert api.session is not None and not api.session.closed
                assert await api.echo(f"entered{run}") == f"/echo/entered{run}"
            assert api.session is None
            assert registry.stats().in_use == 0

        for run in range(3):
            asyncio.run(later(run))
        gc.collect()
        assert first_loop[0]() is None, "the container keeps its first, closed loop alive"
    finally:
        server.stop()


def test_a_container_attached_with_async_with_on_a_loop_that_closed_is_dropped() -> None:
    server = ThreadServer()
    registry = SessionRegistry()
    api = Echo(server.url, registry=registry)
    try:

        async def first() -> None:
            await api.__aenter__()  # the loop ends inside the block
            assert await api.echo("first") == "/echo/first"

        asyncio.run(first())

        async def later() -> str:
            return await api.echo("later")

        assert asyncio.run(later()) == "/echo/later"
    finally:
        server.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_a_forked_child_gets_fresh_sessions_and_the_parents_keep_working() -> None:
    server = ThreadServer()
    registry = SessionRegistry()
    api = Echo(server.url, registry=registry)
    plain = Echo(server.url, registry=registry, headers={"X-Plain": "1"})
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(api.__aenter__())
        parent_session = api.session
        assert parent_session is not None
        assert (
            loop.run_until_complete(api.echo("parent-before")) == "/echo/parent-before"
        )  # a warm connection
        assert loop.run_until_complete(plain.echo("plain-before")) == "/echo/plain-before"  # a warm idle one

        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
            pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            code = 1
            try:
                os.close(read_end)
                report = in_the_child(api, plain, parent_session)
                os.write(write_end, json.dumps(report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, data
        report = json.loads(data)
        assert report["session"] == "None", f"the child sees the parent's session: {report}"
        assert report["call"] == "/echo/child-call", f"the child was handed the parent's session: {report}"
        assert report["generator"] == ["/echo/g1", "/echo/g2"], report
        assert report["entered"] == "another", report
        assert report["entered_call"] == "/echo/child-entered", report
        assert report["plain"] == "/echo/child-plain", report
        assert report["parent_session_closed_in_child"] is False, report

        # The parent's attached session and its connections still work.
        assert api.session is parent_session
        assert loop.run_until_complete(api.echo("parent-after")) == "/echo/parent-after"
        assert loop.run_until_complete(plain.echo("plain-after")) == "/echo/plain-after"
    finally:
        loop.run_until_complete(api.__aexit__(None, None, None))
        loop.run_until_complete(registry.close())
        loop.close()
        server.stop()


def in_the_child(api: Echo, plain: Echo, parent_session: aiohttp.ClientSession) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        report: dict[str, Any] = {"session": describe(api.session, parent_session)}
        report["call"] = await api.probe("child-call", parent_session)
        report["generator"] = [line async for line in api.probe_lines(parent_session)]
        async with api:
            report["entered"] = describe(api.session, parent_session)
            report["entered_call"] = await api.probe("child-entered", parent_session)
        report["plain"] = await plain.probe("child-plain", parent_session)
        return report

    report = asyncio.run(main())
    report["parent_session_closed_in_child"] = parent_session.closed
    return report
