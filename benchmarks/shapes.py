"""Issue 10's shapes, where cost per request must not grow with sites, containers or loop turns.

- ``sites``: N distinct origins (N ports of 127.0.0.1), a few sequential requests per visit, every
  origin visited once per round by a few concurrent workers, three rounds;
- ``sequential``: one origin, one call at a time with ``await asyncio.sleep(0)`` between calls (the
  loop runs between them, as in any real program);
- ``entered``: many containers for one site, each entered with ``async with`` for one call.

Every strategy runs the whole shape against the same upstream; ``alternate`` rotates them per
repetition and keeps each run's ratio to ``handheld`` (one ``ClientSession`` passed everywhere).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any, TypeVar

import aiohttp
import httpx

import asynctools

from .endtoend import Upstream, rss_bytes
from .strategies import Tally

T = TypeVar("T")


@dataclass
class Shape:
    bases: list[str]  # the origins, scheme://127.0.0.1:port
    ssl: SSLContext | None
    per_visit: int = 1  # sequential requests per visit of an origin (or per container)
    rounds: int = 1  # every origin visited once per round
    concurrency: int = 1  # workers visiting origins at once
    containers: int = 0  # entered: how many containers (all for bases[0])
    pause: bool = False  # await asyncio.sleep(0) between calls

    @property
    def requests(self) -> int:
        visits = self.containers if self.containers else len(self.bases) * self.rounds
        return visits * self.per_visit

    @property
    def ssl_arg(self) -> SSLContext | bool:
        return self.ssl if self.ssl is not None else True


async def read(session: aiohttp.ClientSession, url: str, s: Shape) -> bytes:
    async with session.get(url, ssl=s.ssl_arg) as resp:
        return await resp.read()


class Site(asynctools.AbstractSessionContainer):
    """A container for one origin, written as users write them."""

    def __init__(
        self, base: str, s: Shape, registry: asynctools.SessionRegistry, **session_kwargs: Any
    ) -> None:
        super().__init__(base, registry=registry, **session_kwargs)
        self.url, self.shape = base + "/item", s

    @asynctools.attach_session
    async def fetch(self, session: aiohttp.ClientSession | None = None) -> bytes:
        assert session is not None
        return await read(session, self.url, self.shape)


async def workers(items: Iterable[T], concurrency: int, visit: Callable[[T], Awaitable[None]]) -> None:
    """*concurrency* workers taking items from one iterator until it is exhausted."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await visit(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def every_round(s: Shape, visit: Callable[[str], Awaitable[None]]) -> None:
    """Every origin visited once per round, by *s.concurrency* workers, *s.rounds* times."""
    for _ in range(s.rounds):
        await workers(s.bases, s.concurrency, visit)


async def calls(s: Shape, call: Callable[[], Awaitable[bytes]]) -> None:
    """One visit: *per_visit* calls in a row, with a loop turn between them if the shape says so."""
    for _ in range(s.per_visit):
        await call()
        if s.pause:
            await asyncio.sleep(0)


Run = Callable[[Shape, Tally], Coroutine[Any, Any, None]]


# -- many sites ---------------------------------------------------------------------------------------


async def sites_handheld(s: Shape, tally: Tally) -> None:
    """One ClientSession for every origin, passed by hand."""
    async with aiohttp.ClientSession() as session:
        tally.sessions += 1

        async def visit(base: str) -> None:
            url = base + "/item"
            await calls(s, lambda: read(session, url, s))

        await every_round(s, visit)


async def sites_containers(s: Shape, tally: Tally) -> None:
    """One container per origin (made once, base_url), entered with async with for each visit."""
    async with asynctools.SessionRegistry() as registry:  # the defaults, as default_registry has them
        apis = {base: Site(base, s, registry) for base in s.bases}

        async def visit(base: str) -> None:
            async with apis[base] as api:
                await calls(s, api.fetch)

        await every_round(s, visit)
        tally.sessions += registry.stats().created


async def sites_unattached(s: Shape, tally: Tally) -> None:
    """One container per origin, never entered: every call acquires and releases."""
    async with asynctools.SessionRegistry() as registry:
        apis = {base: Site(base, s, registry) for base in s.bases}

        async def visit(base: str) -> None:
            await calls(s, apis[base].fetch)

        await every_round(s, visit)
        tally.sessions += registry.stats().created


async def sites_httpx(s: Shape, tally: Tally) -> None:
    """One httpx.AsyncClient for every origin (its defaults: 100 connections, 20 kept alive)."""
    timeout = httpx.Timeout(60.0, pool=None)
    async with httpx.AsyncClient(verify=s.ssl if s.ssl is not None else True, timeout=timeout) as client:
        tally.sessions += 1

        async def get(url: str) -> bytes:
            return (await client.get(url)).content

        async def visit(base: str) -> None:
            url = base + "/item"
            await calls(s, lambda: get(url))

        await every_round(s, visit)


SITES: dict[str, Run] = {
    "handheld": sites_handheld,
    "containers": sites_containers,
    "unattached": sites_unattached,
    "httpx": sites_httpx,
}


# -- one site: sequential calls, and many containers entered ------------------------------------------


async def one_handheld(s: Shape, tally: Tally) -> None:
    """One ClientSession; one call per container slot (or all calls in a row)."""
    async with aiohttp.ClientSession() as session:
        tally.sessions += 1
        url = s.bases[0] + "/item"

        async def visit(_: int) -> None:
            await calls(s, lambda: read(session, url, s))

        await workers(range(s.containers or 1), s.concurrency, visit)


async def one_containers(s: Shape, tally: Tally) -> None:
    """Sequential: one container entered once. Entered: a new container entered for each call."""
    async with asynctools.SessionRegistry() as registry:
        if s.containers:

            async def visit(_: int) -> None:
                async with Site(s.bases[0], s, registry) as api:
                    await calls(s, api.fetch)

            await workers(range(s.containers), s.concurrency, visit)
        else:
            async with Site(s.bases[0], s, registry) as api:
                await calls(s, api.fetch)
        tally.sessions += registry.stats().created


async def one_unattached(s: Shape, tally: Tally) -> None:
    """Containers never entered, nobody else holding the session: each call acquires and releases."""
    async with asynctools.SessionRegistry() as registry:
        if s.containers:

            async def visit(_: int) -> None:
                await calls(s, Site(s.bases[0], s, registry).fetch)

            await workers(range(s.containers), s.concurrency, visit)
        else:
            await calls(s, Site(s.bases[0], s, registry).fetch)
        tally.sessions += registry.stats().created


ONE_SITE: dict[str, Run] = {
    "handheld": one_handheld,
    "containers": one_containers,
    "unattached": one_unattached,
}


# -- measuring ----------------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def sample(peak: dict[str, int], stop: asyncio.Event) -> None:
    """Peak RSS every 10 ms; open fds every 50 ms (listing 10,000 fds takes about 10 ms here)."""
    tick = 0
    while not stop.is_set():
        peak["rss"] = max(peak["rss"], rss_bytes())
        if tick % 5 == 0:
            peak["fds"] = max(peak["fds"], open_fds())
        tick += 1
        await asyncio.sleep(0.01)


async def measure(run: Run, s: Shape, server: Upstream) -> dict[str, float]:
    """Run one strategy over the whole shape once: throughput, connections, sessions, fds, memory."""
    tally = Tally()
    gc.collect()
    connections_before = await server.connections()
    fds_before, rss_before = open_fds(), rss_bytes()
    peak, stop = {"rss": rss_before, "fds": fds_before}, asyncio.Event()
    sampler = asyncio.ensure_future(sample(peak, stop))
    cpu, start = time.process_time(), time.perf_counter()
    await run(s, tally)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    stop.set()
    await sampler
    return {
        "requests_per_s": s.requests / elapsed,
        "seconds": elapsed,
        "connections": await server.connections() - connections_before,
        "sessions": tally.sessions,
        "peak_fds": peak["fds"] - fds_before,
        "peak_rss_mb": peak["rss"] / 2**20,
        "rss_growth_mb": (peak["rss"] - rss_before) / 2**20,
        "client_cpu_us_per_request": cpu / s.requests * 1e6,
    }


async def alternate(
    strategies: dict[str, Run],
    s: Shape,
    server: Upstream,
    repetitions: int,
    advance: Callable[[str], None],
    warm_up: bool = True,
    baseline: str = "handheld",
) -> dict[str, dict[str, Any]]:
    """Every strategy *repetitions* times, the order rotating; medians, and ratios to *baseline*.

    A strategy's ratio is the median of its ratios to *baseline* within each repetition (drift between
    repetitions cancels); ``ratio_min``/``ratio_max`` give their spread.
    """
    names = list(strategies)
    if warm_up:
        for name in names:
            await measure(strategies[name], s, server)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for repetition in range(repetitions):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(await measure(strategies[name], s, server))
            advance(name)
    results: dict[str, dict[str, Any]] = {}
    baselines = [run["requests_per_s"] for run in runs[baseline]]
    for name, samples in runs.items():
        row: dict[str, Any] = {
            field: statistics.median(run[field] for run in samples) for field in samples[0]
        }
        ratios = [run["requests_per_s"] / b for run, b in zip(samples, baselines, strict=True)]
        row.update(
            ratio=statistics.median(ratios),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
            samples_requests_per_s=[run["requests_per_s"] for run in samples],
            repetitions=repetitions,
        )
        results[name] = row
    return results
