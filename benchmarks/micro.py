"""In-process micro-benchmarks: what a decorated call and an acquire cost, against a bare method call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
from yarl import URL

import asynctools


class Bare:
    async def call(self, session: object = None) -> object:
        return session


class Container(asynctools.AbstractSessionContainer):
    @asynctools.attach_session
    async def call(self, session: aiohttp.ClientSession | None = None) -> object:
        return session


async def time_per_call(call: Callable[[], Awaitable[object]], n: int, repeats: int) -> float:
    """Best time of *repeats* runs, in ns per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(n):
            await call()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


async def time_per_paused_call(call: Callable[[], Awaitable[object]], n: int, repeats: int) -> float:
    """Best time of *repeats* runs, in ns per call followed by ``await asyncio.sleep(0)``.

    The loop runs between calls, as in a real program: what a release schedules (a settle callback,
    an idle timer) runs before the next call instead of being skipped.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(n):
            await call()
            await asyncio.sleep(0)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


async def micro(n: int, repeats: int) -> dict[str, float]:
    registry = asynctools.SessionRegistry()
    bare = Bare()
    attached = Container("http://bench.example", registry=registry)
    unattached = Container("http://bench.example", registry=registry)
    async with attached:
        await unattached.call()  # warm: the registry holds an idle session for the key
        results = {
            "bare_ns": await time_per_call(bare.call, n, repeats),
            "attached_ns": await time_per_call(attached.call, n, repeats),
            "unattached_ns": await time_per_call(unattached.call, n, repeats),
            # The same call with a loop turn after each, the session still held by `attached`.
            "unattached_held_paused_ns": await time_per_paused_call(unattached.call, n, repeats),
        }
    # Nobody else holds the session: each call takes it from idle and gives it back to idle.
    alone_registry = asynctools.SessionRegistry()
    alone = Container("http://bench.example", registry=alone_registry)
    await alone.call()
    results["bare_paused_ns"] = await time_per_paused_call(bare.call, n, repeats)
    results["unattached_alone_paused_ns"] = await time_per_paused_call(alone.call, n, repeats)
    await alone_registry.close()
    await registry.close()
    # Both sides pay the loop turn: the ratio is (call + sleep(0)) / (bare call + sleep(0)), and the
    # difference is what the unattached call adds on top of a bare one when the loop runs between calls.
    results["unattached_alone_paused_ratio"] = (
        results["unattached_alone_paused_ns"] / results["bare_paused_ns"]
    )
    results["unattached_held_paused_ratio"] = results["unattached_held_paused_ns"] / results["bare_paused_ns"]
    results["unattached_alone_paused_added_ns"] = (
        results["unattached_alone_paused_ns"] - results["bare_paused_ns"]
    )
    results["unattached_held_paused_added_ns"] = (
        results["unattached_held_paused_ns"] - results["bare_paused_ns"]
    )
    results["attached_ratio"] = results["attached_ns"] / results["bare_ns"]
    results["unattached_ratio"] = results["unattached_ns"] / results["bare_ns"]
    return results


async def acquire_cost(keys: int, n: int, repeats: int) -> float:
    """ns per acquire() of an existing session, with *keys* distinct keys held in use."""
    registry = asynctools.SessionRegistry()
    urls = [URL(f"http://h{i}.example") for i in range(keys)]  # parsed once, as a container does
    held = [await registry.acquire(url) for url in urls]
    best = float("inf")
    for _ in range(repeats):
        taken = []
        start = time.perf_counter_ns()
        for i in range(n):
            taken.append(await registry.acquire(urls[(i * 7919) % keys]))
        best = min(best, (time.perf_counter_ns() - start) / n)
        for session in taken:
            await registry.release(session)
    for session in held:
        await registry.release(session)
    await registry.close()
    return best


async def run_micro(quick: bool) -> dict[str, object]:
    """All micro-benchmarks: decorated calls against a bare call, and acquire() at 10 to 10,000 keys."""
    n, repeats = (20_000, 3) if quick else (200_000, 5)
    results: dict[str, object] = dict(await micro(n, repeats))
    acquire = {str(keys): await acquire_cost(keys, n // 4, repeats) for keys in (10, 1000, 10_000)}
    results["acquire_ns"] = acquire
    results["acquire_ratio_10000_vs_10"] = acquire["10000"] / acquire["10"]
    return results
