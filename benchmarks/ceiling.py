"""``python -m benchmarks.ceiling``: the least any design of ours could cost, beside what asynctools costs.

Issue 10 and 11 ask asynctools to reach 0.95x of a hand-held session (many sites, containers entered)
and 0.95x of no policy (retry + rate limit never triggered). How close can *any* implementation of the
same design come? Each case runs, alternated in one process against the usual upstream, the
baseline, asynctools, and the least such a design can do, written out here without a single
guarantee (no loop binding, no closed-session checks, no exactly-once release, no idle bound, no
figures):

* ``sites``: ``per_site`` is one ``ClientSession`` per origin, made at its first visit on one shared
  connector (what a session per site costs by itself); ``least`` adds a container counted in and out at
  each visit and a decorator coroutine that hands it the session (the least a container per site adds).
* ``entered``: a new container per call for one site, entered with ``async with``: ``least`` as above.
* ``policies``: ``passthrough`` is a middleware that only calls the next handler (aiohttp's own cost);
  ``least`` a middleware with a rate-limit log, an in-flight count and a retry check written inline.

python -m benchmarks.ceiling                   # all three, a few minutes
python -m benchmarks.ceiling --case sites --origins 1000 --repetitions 9 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType

import asynctools

from .endtoend import upstream
from .policies import passthrough, variant_run
from .shapes import ONE_SITE, SITES, Run, Shape, Site, alternate, calls, read, workers
from .strategies import Tally

# -- the least a session per site and a container per visit can cost ----------------------------------


class _Ledger:
    """A session and its count of users, nothing else."""

    __slots__ = ("session", "since", "users")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session, self.users, self.since = session, 0, 0.0


class _Sessions:
    """One session per origin, made when first asked for, on one shared connector; closed at the end."""

    def __init__(self) -> None:
        self.connector = aiohttp.TCPConnector(limit=0, limit_per_host=100)
        self.by_origin: dict[str, _Ledger] = {}

    def get(self, base: str) -> _Ledger:
        ledger = self.by_origin.get(base)
        if ledger is None or ledger.session.closed:
            session = aiohttp.ClientSession(connector=self.connector, connector_owner=False)
            ledger = self.by_origin[base] = _Ledger(session)
        return ledger

    async def close(self) -> None:
        for ledger in self.by_origin.values():
            await ledger.session.close()
        await self.connector.close()


def _least_decorator(
    func: Callable[[Any, aiohttp.ClientSession], Awaitable[bytes]],
) -> Callable[[Any], Coroutine[Any, Any, bytes]]:
    """A decorator coroutine that passes the container's session (attached by ``async with``)."""

    @functools.wraps(func)
    async def call(self: _LeastSite) -> bytes:
        ledger = self.ledger
        assert ledger is not None
        return await func(self, ledger.session)

    return call


class _LeastSite:
    """A container counted in at ``async with`` and out after it, the idle time stamped at zero users."""

    def __init__(self, base: str, s: Shape, sessions: _Sessions) -> None:
        self.base, self.url, self.shape, self.sessions = base, base + "/item", s, sessions
        self.ledger: _Ledger | None = None

    async def __aenter__(self) -> _LeastSite:
        ledger = self.ledger = self.sessions.get(self.base)
        ledger.users += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        ledger, self.ledger = self.ledger, None
        assert ledger is not None
        ledger.users -= 1
        if not ledger.users:
            ledger.since = time.monotonic()

    @_least_decorator
    async def fetch(self, session: aiohttp.ClientSession) -> bytes:
        return await read(session, self.url, self.shape)


async def _every_round(
    s: Shape, tally: Tally, sessions: _Sessions, visit: Callable[[str], Awaitable[None]]
) -> None:
    """Every origin visited once per round by *s*'s workers; then the sessions counted and closed."""
    for _ in range(s.rounds):
        await workers(s.bases, s.concurrency, visit)
    tally.sessions += len(sessions.by_origin)
    await sessions.close()


async def sites_per_site(s: Shape, tally: Tally) -> None:
    """A session per origin, made at its first visit, passed by hand."""
    sessions = _Sessions()

    async def visit(base: str) -> None:
        session, url = sessions.get(base).session, base + "/item"
        await calls(s, lambda: read(session, url, s))

    await _every_round(s, tally, sessions, visit)


async def sites_least(s: Shape, tally: Tally) -> None:
    """A session per origin and a container per origin, entered for each visit."""
    sessions = _Sessions()
    sites = {base: _LeastSite(base, s, sessions) for base in s.bases}

    async def visit(base: str) -> None:
        async with sites[base] as site:
            await calls(s, site.fetch)

    await _every_round(s, tally, sessions, visit)


async def entered_least(s: Shape, tally: Tally) -> None:
    """A new container for each call to one site, entered with ``async with``."""
    sessions = _Sessions()

    async def visit(_: int) -> None:
        async with _LeastSite(s.bases[0], s, sessions) as site:
            await calls(s, site.fetch)

    await workers(range(s.containers), s.concurrency, visit)
    tally.sessions += len(sessions.by_origin)
    await sessions.close()


# -- the least a retry + rate-limit middleware can cost -----------------------------------------------


class _LeastPolicy:
    """A rate-limit log that never fills, an in-flight count and the retry check, nothing else."""

    def __init__(self) -> None:
        self.held, self.limit, self.in_flight = 0, 10**9, 0
        self.finished: collections.deque[float] = collections.deque(maxlen=10**6)
        self.statuses = frozenset({429, 502, 503, 504})
        self.sites: dict[tuple[str, str], _LeastPolicy] = {}

    async def send(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if self.held + len(self.finished) >= self.limit:
            raise RuntimeError("never: the limit is out of reach")
        self.held += 1
        self.in_flight += 1
        try:
            resp = await handler(req)
        finally:
            self.held -= 1
            self.finished.append(time.monotonic())
        if resp.connection is None:
            self.in_flight -= 1
        if resp.status in self.statuses:
            raise RuntimeError(f"never: the upstream answers 200, not {resp.status}")
        return resp


def _least_middleware() -> Callable[[ClientRequest, ClientHandlerType], Awaitable[ClientResponse]]:
    policy = _LeastPolicy()

    def middleware(req: ClientRequest, handler: ClientHandlerType) -> Awaitable[ClientResponse]:
        url = req.url
        return policy.sites.get((url.scheme, url.raw_authority), policy).send(req, handler)

    return middleware


def _with_middleware(make: Callable[[], Any]) -> Run:
    async def run(s: Shape, tally: Tally) -> None:
        async with asynctools.SessionRegistry() as registry:
            async with Site(s.bases[0], s, registry, middlewares=(make(),)) as api:

                async def visit(_: int) -> None:
                    await calls(s, api.fetch)

                await workers(range(s.containers), s.concurrency, visit)
            tally.sessions += registry.stats().created

    return run


# -- running ------------------------------------------------------------------------------------------


def cases(origins: int, quick: bool) -> dict[str, tuple[dict[str, Run], str, Callable[[list[str]], Shape]]]:
    """Each case: its strategies, the baseline's name, and its shape for the upstream's bases."""
    return {
        "sites": (
            {
                "handheld": SITES["handheld"],
                "per_site": sites_per_site,
                "least": sites_least,
                "containers": SITES["containers"],
            },
            "handheld",
            lambda bases: Shape(bases[:origins], None, per_visit=2, rounds=3, concurrency=10),
        ),
        "entered": (
            {"handheld": ONE_SITE["handheld"], "least": entered_least, "containers": ONE_SITE["containers"]},
            "handheld",
            lambda bases: Shape(bases[:1], None, containers=300 if quick else 10_000, concurrency=10),
        ),
        "policies": (
            {
                "none": variant_run("none", None),
                "passthrough": _with_middleware(lambda: passthrough),
                "least": _with_middleware(_least_middleware),
                "asynctools": variant_run("local", None),
            },
            "none",
            lambda bases: Shape(
                bases[:1], None, containers=10, per_visit=50 if quick else 1000, concurrency=10
            ),
        ),
    }


async def measure_case(
    strategies: dict[str, Run], baseline: str, s: Shape, server: Any, repetitions: int
) -> dict[str, dict[str, float]]:
    """Ratios to *baseline* (median and spread of the per-repetition ratios) and client CPU per request."""
    if baseline != "handheld":  # alternate() takes its ratios against "handheld"
        others = {name: run for name, run in strategies.items() if name != baseline}
        strategies = {"handheld": strategies[baseline], **others}
    rows = await alternate(strategies, s, server, repetitions, lambda _: None)
    return {
        (baseline if name == "handheld" else name): {
            "ratio": row["ratio"],
            "ratio_min": row["ratio_min"],
            "ratio_max": row["ratio_max"],
            "cpu_us_per_request": row["client_cpu_us_per_request"],
            "requests": s.requests,
            "sessions": row["sessions"],
        }
        for name, row in rows.items()
    }


def report(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for case, rows in results.items():
        baseline = next(iter(rows))
        lines.append(f"{case}: throughput against {baseline}, median (min-max); client CPU per request")
        for name, row in rows.items():
            lines.append(
                f"  {name:12} {row['ratio']:.3f}x ({row['ratio_min']:.3f}-{row['ratio_max']:.3f})"
                f"  {row['cpu_us_per_request']:.1f} µs"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=summary)
    parser.add_argument("--case", choices=("sites", "entered", "policies"), action="append")
    parser.add_argument("--origins", type=int, default=100, help="origins in the sites case (default 100)")
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small shapes, to prove the harness works")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    chosen = cases(args.origins, args.quick)
    names = args.case or list(chosen)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with upstream(None, ports=args.origins) as server:
        for name in names:
            strategies, baseline, shape = chosen[name]
            results[name] = asyncio.run(
                measure_case(strategies, baseline, shape(server.bases), server, args.repetitions)
            )
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
