"""Shutdown waits for the last user, closes everything, and leaves nothing running or referenced.

When ``asyncio.run()``, ``asyncio.Runner``, ``web.run_app()`` or a hand-driven loop ends, a task being
cancelled and async generators being finalised still make requests in their ``finally:`` through
attached and unattached containers, and those succeed; sessions are closed after that, before the loop
closes. Sessions that expired, were evicted or were released in the last ticks are closed too. Each of
these runs tests/scripts/shutdown_scenarios.py in a ``python -X dev -W error::ResourceWarning``
subprocess against this test's server; its stderr must be clean.

In-process: nothing the registry leaves running hangs "wait for every other task" code, and the
registry keeps no caller's contextvars alive.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import weakref
from pathlib import Path

import aiohttp
import pytest
from conftest import Upstream

from asynctools import AbstractSessionContainer, SessionRegistry, attach_session

SCRIPT = Path(__file__).parent / "scripts" / "shutdown_scenarios.py"
FORBIDDEN = (
    "Unclosed client session",
    "Unclosed connector",
    "Unclosed connection",
    "Task was destroyed",
    "Exception ignored",
    "Connector is closed",
    "Session is closed",
    "Traceback",
)
TASK_LINES = {
    "finally task attached: ok task-attached",
    "finally task unattached: ok task-unattached",
    "finally task helper: ok task-helper",
}
GENERATOR_LINES = {
    "finally generator attached: ok gen-attached",
    "finally generator unattached: ok gen-unattached",
    "finally decorated generator: ok dgen",
}


async def run_script(mode: str, url: str) -> tuple[int, str, str]:
    # Awaited, not subprocess.run(): this loop serves the script's requests meanwhile.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        "-W",
        "error::ResourceWarning",
        str(SCRIPT),
        mode,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def assert_clean(code: int, out: str, err: str) -> None:
    assert code == 0, err
    for text in FORBIDDEN:
        assert text not in err, f"{text!r} at exit:\n{err}"
    assert "open sessions after exit: 0" in out, out


def finally_lines(out: str) -> set[str]:
    return {line for line in out.splitlines() if line.startswith("finally ")}


async def test_asyncio_run_lets_finally_blocks_make_requests_then_closes_everything(
    upstream: Upstream,
) -> None:
    code, out, err = await run_script("asyncio-run", upstream.url())
    assert finally_lines(out) == TASK_LINES | GENERATOR_LINES, out
    assert_clean(code, out, err)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is new in Python 3.11")
async def test_asyncio_runner_lets_finally_blocks_make_requests_then_closes_everything(
    upstream: Upstream,
) -> None:
    code, out, err = await run_script("runner", upstream.url())
    assert finally_lines(out) == TASK_LINES | GENERATOR_LINES, out
    assert_clean(code, out, err)


async def test_web_run_app_lets_finally_blocks_make_requests_then_closes_everything(
    upstream: Upstream,
) -> None:
    code, out, err = await run_script("run-app", upstream.url())
    assert finally_lines(out) == TASK_LINES | GENERATOR_LINES, out
    assert_clean(code, out, err)


async def test_a_hand_driven_loop_with_shutdown_asyncgens_is_clean(upstream: Upstream) -> None:
    code, out, err = await run_script("by-hand", upstream.url())
    assert finally_lines(out) == TASK_LINES | GENERATOR_LINES, out
    assert_clean(code, out, err)


async def test_a_loop_shut_down_the_old_pytest_asyncio_way_is_clean(upstream: Upstream) -> None:
    # run_until_complete(main); run_until_complete(shutdown_asyncgens()); close(): no task is cancelled.
    code, out, err = await run_script("old-pytest-asyncio", upstream.url())
    assert finally_lines(out) == GENERATOR_LINES, out
    assert_clean(code, out, err)


async def test_sessions_expiring_in_the_last_ticks_are_closed_at_exit(upstream: Upstream) -> None:
    code, out, err = await run_script("churn-ttl", upstream.url())
    assert "churn: ok" in out, out + err
    assert_clean(code, out, err)


async def test_sessions_evicted_in_the_last_ticks_are_closed_at_exit(upstream: Upstream) -> None:
    code, out, err = await run_script("churn-lru", upstream.url())
    assert "churn: ok" in out, out + err
    assert_clean(code, out, err)


async def test_the_registry_leaves_no_task_for_wait_for_every_other_task_code(upstream: Upstream) -> None:
    code, out, err = await run_script("wait-all", upstream.url())
    assert "other tasks: []" in out, f"tasks left running after the registry's sessions closed: {out}"
    assert_clean(code, out, err)


# -- contextvars -----------------------------------------------------------------------------------


class Payload:
    """Something a caller keeps in a ContextVar (a request, a user...); weakly referenceable."""


request_var: contextvars.ContextVar[Payload | None] = contextvars.ContextVar("request_var", default=None)


class Api(AbstractSessionContainer):
    @attach_session
    async def status(self, session: aiohttp.ClientSession | None = None) -> int:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/echo")) as resp:
            return resp.status


async def test_the_first_acquisition_keeps_no_callers_contextvars_alive(upstream: Upstream) -> None:
    registry = SessionRegistry()  # a new registry: this loop's first acquisition happens in the task
    refs: list[weakref.ref[Payload]] = []

    async def handle_request() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        request_var.set(payload)
        session = await registry.acquire(upstream.url())
        await registry.release(session)  # idle now, kept warm: its timer must not hold this context
        # No request here: a connection aiohttp opens keeps the context of the request that opened it
        # (its transport's reader callback), as it would in a session held by hand.

    task = asyncio.create_task(handle_request())
    await task
    del task
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    try:
        assert refs[0]() is None, "the registry keeps the first caller's context (and its ContextVar) alive"
    finally:
        await registry.close()


async def test_a_container_entered_first_in_a_task_keeps_no_contextvars_alive(upstream: Upstream) -> None:
    registry = SessionRegistry()
    refs: list[weakref.ref[Payload]] = []

    async def handle_request() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        request_var.set(payload)
        async with Api(upstream.url(), registry=registry) as api:  # created, attached, then idle
            assert api.session is not None

    await asyncio.create_task(handle_request())
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    try:
        assert refs[0]() is None, "the registry keeps the first caller's context (and its ContextVar) alive"
    finally:
        await registry.close()
