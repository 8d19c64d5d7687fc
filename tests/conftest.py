"""Loopback servers and the guard every test runs under: no session, task, timer or warning may leak."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, settings

import asynctools
from asynctools.pytest_plugin import (
    _describe_open_sessions,
    _describe_reports,
    _open_sessions,
    _pending_tasks,
)

# Its entry point is turned off in setup.cfg (see there): loaded here, once coverage measures.
pytest_plugins = ["asynctools.pytest_plugin"]

# No time limits, rates or throughput shares asserted in tests (print them; benchmarks/ measures them):
# a loaded CI machine must not turn slowness into failures.
settings.register_profile("asynctools", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("asynctools")


#: Whether the guard scans every object for open sessions after each test (set in pytest_configure). The
#: quick loop (``-m "not slow"``) asks only the registries, which know their own sessions: a session a
#: test made by hand and dropped open is still an error there ("Unclosed client session" is a
#: ResourceWarning), once it is collected. The README's run, which CI runs, scans.
FULL_SCAN = True


def pytest_configure(config: pytest.Config) -> None:
    global FULL_SCAN
    FULL_SCAN = "not slow" not in str(config.option.markexpr)


def registries_with_open_sessions() -> list[asynctools.SessionRegistry]:
    """The registries of the process holding open sessions on the running loop."""
    return [r for r in list(asynctools._registry._registries) if r.stats().open]


def leaks(
    loop: asyncio.AbstractEventLoop,
    tasks_before: set[asyncio.Task[Any]],
    threads_before: set[threading.Thread],
    reports: list[dict[str, Any]],
    full_scan: bool | None = None,
) -> list[str]:
    """What a test left behind: loop reports, pending tasks and timers, new threads, open sessions
    (every object scanned for them with *full_scan*, ``FULL_SCAN`` by default; else the registries')."""
    executor = getattr(loop, "_default_executor", None)  # getaddrinfo's threads belong to the loop
    pool_threads = set(getattr(executor, "_threads", ()))
    # Loop reports, pending tasks and open sessions are found as the pytest plugin's leak check finds
    # them; timers and threads are this suite's stricter additions.
    problems = _describe_reports(reports)
    problems += [f"task left pending: {t!r}" for t in _pending_tasks(loop, tasks_before)]
    problems += [f"timer left scheduled: {h!r}" for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    for thread in threading.enumerate():
        if thread not in threads_before and re.fullmatch(r"(asyncio-)?waitpid-\d+", thread.name):
            # asyncio's ThreadedChildWatcher (3.10 and 3.11; later Pythons where pidfds are missing) reaps
            # each child process in a thread of its own, which ends just after it has reported the exit:
            # the awaited process is done while the thread may still be returning. Give it that moment;
            # a thread still waiting on a child that never exits is reported below.
            thread.join(timeout=10)
    problems += [
        f"thread left running: {t!r}"
        for t in threading.enumerate()
        if t not in threads_before and t not in pool_threads and t.is_alive()
    ]
    if FULL_SCAN if full_scan is None else full_scan:
        problems += _describe_open_sessions()  # collects garbage first
    else:
        problems += [f"{r!r} left open: {r.stats().sessions}" for r in registries_with_open_sessions()]
    return problems


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test on a loop exception report, a pending task or timer, a new thread or an open session.

    ResourceWarning ("Unclosed client session", "Unclosed connector") is already an error through
    ``filterwarnings = error``; aiohttp's "Unclosed ..." reports reach the loop's exception handler,
    which this fixture records.
    """
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reports.append(context))
    tasks_before, threads_before = asyncio.all_tasks(), set(threading.enumerate())
    yield reports
    await asynctools.default_registry.close()
    await asyncio.sleep(0)  # let done-callbacks of closed sessions run
    problems = leaks(loop, tasks_before, threads_before, reports)
    # Close what leaked, so that one leak fails one test only.
    for session in _open_sessions() if FULL_SCAN else ():
        await session.close()
    for leaky in registries_with_open_sessions():
        await leaky.close()
    loop.set_exception_handler(None)
    assert not problems, "\n".join(problems)


class Upstream:
    """A loopback aiohttp server that records what reaches it."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.peers: set[tuple[str, int]] = set()  # one (host, port) per TCP connection seen
        self.requests = 0
        self.release = asyncio.Event()  # /wait answers once this is set
        self.waiting = asyncio.Event()  # set when a request reaches /wait

    def url(self, path: str = "/") -> str:
        return str(self.server.make_url(path))

    @property
    def origin(self) -> str:
        return self.url("/").rstrip("/")


def format_number(value: float) -> str:
    """Numbers as mathjs prints them: integers without a decimal point."""
    return str(int(value)) if value == int(value) else repr(value)


def make_upstream_app(upstream_ref: list[Upstream]) -> web.Application:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        upstream = upstream_ref[0]
        upstream.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            upstream.peers.add((peer[0], peer[1]))
        return await handler(request)

    async def echo(request: web.Request) -> web.Response:
        body = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "cookies": dict(request.cookies),
            "body": await request.text(),
        }
        return web.json_response(body)

    async def square(request: web.Request) -> web.Response:
        # Enough of the math API for "N^2": the seed README's only expression.
        expr = request.query.get("expr", "")
        base, _, power = expr.partition("^")
        try:
            return web.Response(text=format_number(float(base) ** float(power or 1)))
        except ValueError:
            return web.Response(status=400, text=f"Error: cannot evaluate {expr!r}")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        hold = "hold" in request.query  # the rest of the body waits for upstream.release after line 0
        try:
            for i in range(int(request.query.get("n", "5"))):
                if hold and i == 1:
                    await upstream_ref[0].release.wait()
                await resp.write(f"line {i}\n".encode())
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client released the response without reading it all
        return resp

    async def set_cookie(request: web.Request) -> web.Response:
        resp = web.Response(text="set")
        resp.set_cookie(request.query["name"], request.query["value"])
        return resp

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def wait(request: web.Request) -> web.Response:
        upstream = upstream_ref[0]
        upstream.waiting.set()
        await upstream.release.wait()
        return web.Response(text="released")

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/v4", square)
    app.router.add_get("/stream", stream)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/wait", wait)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """A real aiohttp server on loopback with /echo, /v4, /stream, /set-cookie, /status/N and /wait."""
    ref: list[Upstream] = []
    server = TestServer(make_upstream_app(ref), host="127.0.0.1")
    ref.append(Upstream(server))
    await server.start_server()
    try:
        yield ref[0]
    finally:
        ref[0].release.set()
        await server.close()


@pytest.fixture
async def registry() -> AsyncIterator[asynctools.SessionRegistry]:
    """A registry of the test's own, closed afterwards."""
    reg = asynctools.SessionRegistry()
    yield reg
    await reg.close()


async def read_json(response: aiohttp.ClientResponse) -> Any:
    return json.loads(await response.text())
