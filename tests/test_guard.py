"""The suite's guard catches what it is there to catch (tested on deliberate leaks, then cleaned up)."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from conftest import leaks

import asynctools


async def test_the_guard_catches_a_leaked_session_task_timer_thread_and_loop_report() -> None:
    loop = asyncio.get_running_loop()
    tasks, threads = asyncio.all_tasks(), set(threading.enumerate())
    reports = [{"message": "Unclosed client session"}]
    session = aiohttp.ClientSession()
    task = asyncio.ensure_future(asyncio.Event().wait())
    timer = loop.call_later(3600, lambda: None)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        found = "\n".join(leaks(loop, tasks, threads, reports, full_scan=True))
        kinds = ("loop reported: Unclosed client session", "task left pending", "timer left scheduled")
        for kind in (*kinds, "thread left running", "session left open"):
            assert kind in found
    finally:
        stop.set()
        thread.join()
        timer.cancel()
        task.cancel()
        await asyncio.wait([task])
        await session.close()
    assert leaks(loop, tasks, threads, [], full_scan=True) == []


async def test_without_the_full_scan_the_guard_asks_the_registries() -> None:
    loop = asyncio.get_running_loop()
    tasks, threads = asyncio.all_tasks(), set(threading.enumerate())
    registry = asynctools.SessionRegistry(idle_timeout=0)  # no idle timer: the open session alone
    lease = registry.session("http://127.0.0.1:9/")
    await lease.__aenter__()
    try:
        found = leaks(loop, tasks, threads, [], full_scan=False)
        assert len(found) == 1 and "left open" in found[0] and "127.0.0.1:9" in found[0], found
    finally:
        await lease.__aexit__(None, None, None)
        await registry.close()
    assert leaks(loop, tasks, threads, [], full_scan=False) == []


async def test_the_guard_waits_for_asyncios_child_reaper_threads_to_end() -> None:
    # asyncio's ThreadedChildWatcher threads end just after a child's exit is reported: a thread of
    # that name about to end is not a leak, while any other thread still running is.
    loop = asyncio.get_running_loop()
    threads = set(threading.enumerate())
    other_may_end = threading.Event()
    reaper = threading.Thread(target=threading.Event().wait, args=(0.5,), name="asyncio-waitpid-999")
    other = threading.Thread(target=other_may_end.wait, name="worker-999")
    reaper.start()
    other.start()
    try:
        found = leaks(loop, set(), threads, [])  # the reaper is still running when the guard looks
    finally:
        other_may_end.set()
        reaper.join()
        other.join()
    assert not any("asyncio-waitpid-999" in problem for problem in found), found
    assert any("worker-999" in problem for problem in found), found
