"""The suite's guard catches what it is there to catch (tested on deliberate leaks, then cleaned up)."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from conftest import leaks


async def test_the_guard_catches_a_leaked_session_task_timer_thread_and_loop_report():
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
        found = "\n".join(leaks(loop, tasks, threads, reports))
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
    assert leaks(loop, tasks, threads, []) == []
