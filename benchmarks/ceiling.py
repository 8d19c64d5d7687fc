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
* ``entered``: a new container per call for one site, entered with ``async with``: ``least`` as above;
* ``sequential``: calls in a row from one container never entered, a loop turn between them: ``least``
  counts each call in and out of the site's session;
* ``policies``: ``passthrough`` is a middleware that only calls the next handler (aiohttp's own cost);
  ``least`` a middleware with a rate-limit log, an in-flight count and a retry check written inline
  (``benchmarks.policies.LeastPolicy``); ``--callgrind N`` also counts their instructions per request
  (``benchmarks.policies.callgrind``'s method, N and 2N calls per worker).

All over HTTP. What the least implementations leave out is what asynctools guarantees; the difference
says what those guarantees and its layers cost together, not which of them costs what.

python -m benchmarks.ceiling                   # all three at 100 origins, 9 repetitions: a few minutes
python -m benchmarks.ceiling --case sites --origins 1000 --repetitions 7 --json out.json
python -m benchmarks.ceiling --case entered --case policies --repetitions 15 --callgrind 100
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from .endtoend import Upstream, upstream
from .policies import callgrind, variant_run
from .shapes import ONE_SITE, SITES, Run, Shape, alternate, calls, every_round, read, workers
from .strategies import Tally

# -- the least a session per site and a container per visit can cost ----------------------------------


class _Ledger:
    """A session and its count of users, nothing else."""

    __slots__ = ("session", "since", "users")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session, self.users, self.since = session, 0, 0.0


class _Sessions:
    """One session per origin, made when first asked for, on one shared connector (asynctools's own
    settings); closed on leaving ``async with``."""

    def __init__(self) -> None:
        self.connector = aiohttp.TCPConnector(limit=0, limit_per_host=100)
        self.by_origin: dict[str, _Ledger] = {}
        self.created = 0

    def get(self, base: str) -> _Ledger:
        ledger = self.by_origin.get(base)
        if ledger is None or ledger.session.closed:
            session = aiohttp.ClientSession(connector=self.connector, connector_owner=False)
            ledger = self.by_origin[base] = _Ledger(session)
            self.created += 1
        return ledger

    async def __aenter__(self) -> _Sessions:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for ledger in self.by_origin.values():
            await ledger.session.close()
        await self.connector.close()


def _least_decorator(
    func: Callable[[Any, aiohttp.ClientSession], Awaitable[bytes]],
) -> Callable[[Any], Coroutine[Any, Any, bytes]]:
    """A decorator coroutine that passes the session attached by ``async with``, else counts the call
    in and out of the site's session."""

    @functools.wraps(func)
    async def call(self: _LeastSite) -> bytes:
        ledger = self.ledger
        if ledger is not None:
            return await func(self, ledger.session)
        ledger = self.sessions.get(self.base)
        ledger.users += 1
        try:
            return await func(self, ledger.session)
        finally:
            ledger.users -= 1
            if not ledger.users:
                ledger.since = time.monotonic()

    return call


class _LeastSite:
    """A container counted in at ``async with`` and out after it (or each call, when not entered), the
    idle time stamped at zero users."""

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


async def sites_per_site(s: Shape, tally: Tally) -> None:
    """A session per origin, made at its first visit, passed by hand."""
    async with _Sessions() as sessions:

        async def visit(base: str) -> None:
            session, url = sessions.get(base).session, base + "/item"
            await calls(s, lambda: read(session, url, s))

        await every_round(s, visit)
        tally.sessions += sessions.created


async def sites_least(s: Shape, tally: Tally) -> None:
    """A session per origin and a container per origin, entered for each visit."""
    async with _Sessions() as sessions:
        sites = {base: _LeastSite(base, s, sessions) for base in s.bases}

        async def visit(base: str) -> None:
            async with sites[base] as site:
                await calls(s, site.fetch)

        await every_round(s, visit)
        tally.sessions += sessions.created


async def sequential_least(s: Shape, tally: Tally) -> None:
    """Calls in a row from a container never entered, the loop running between them."""
    async with _Sessions() as sessions:
        await calls(s, _LeastSite(s.bases[0], s, sessions).fetch)
        tally.sessions += sessions.created


async def entered_least(s: Shape, tally: Tally) -> None:
    """A new container for each call to one site, entered with ``async with``."""
    async with _Sessions() as sessions:

        async def visit(_: int) -> None:
            async with _LeastSite(s.bases[0], s, sessions) as site:
                await calls(s, site.fetch)

        await workers(range(s.containers), s.concurrency, visit)
        tally.sessions += sessions.created


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
        "sequential": (
            {
                "handheld": ONE_SITE["handheld"],
                "least": sequential_least,
                "unattached": ONE_SITE["unattached"],
            },
            "handheld",
            lambda bases: Shape(bases[:1], None, per_visit=200 if quick else 2000, pause=True),
        ),
        "policies": (
            {
                "none": variant_run("none", None),
                "passthrough": variant_run("passthrough", None),
                "least": variant_run("least", None),
                "asynctools": variant_run("local", None),
            },
            "none",
            lambda bases: Shape(
                bases[:1], None, containers=10, per_visit=50 if quick else 1000, concurrency=10
            ),
        ),
    }


async def measure_case(
    strategies: dict[str, Run], baseline: str, s: Shape, server: Upstream, repetitions: int
) -> dict[str, dict[str, float]]:
    """Ratios to *baseline* (median and spread of the per-repetition ratios), client CPU per request,
    sessions made and connections the upstream accepted (medians)."""
    rows = await alternate(strategies, s, server, repetitions, lambda _: None, baseline=baseline)
    return {
        name: {
            "ratio": row["ratio"],
            "ratio_min": row["ratio_min"],
            "ratio_max": row["ratio_max"],
            "cpu_us_per_request": row["client_cpu_us_per_request"],
            "requests": s.requests,
            "sessions": row["sessions"],
            "connections": row["connections"],
        }
        for name, row in rows.items()
    }


def report(results: dict[str, Any], baselines: dict[str, str]) -> str:
    lines = []
    for case, rows in results.items():
        if case == "callgrind":
            lines.append(f"policies under callgrind ({rows['method']}): instructions per request")
            for name, row in rows["variants"].items():
                lines.append(f"  {name:12} {row['ir_per_request']:,.0f}  {row['vs_none']:.4f}x none")
            continue
        lines.append(
            f"{case}: throughput against {baselines[case]}, median (min-max); client CPU per request"
        )
        for name, row in rows.items():
            lines.append(
                f"  {name:12} {row['ratio']:.3f}x ({row['ratio_min']:.3f}-{row['ratio_max']:.3f})"
                f"  {row['cpu_us_per_request']:.1f} µs"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=summary)
    parser.add_argument("--case", choices=tuple(cases(0, quick=True)), action="append")
    parser.add_argument("--origins", type=int, default=100, help="origins in the sites case (default 100)")
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small shapes, to prove the harness works")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--callgrind", type=int, metavar="N", help="also count the policies' instructions (valgrind; N: 100)"
    )
    args = parser.parse_args(argv)
    chosen = cases(args.origins, args.quick)
    names = args.case or list(chosen)
    results: dict[str, Any] = {}
    with upstream(None, ports=args.origins) as server:
        for name in names:
            strategies, baseline, shape = chosen[name]
            results[name] = asyncio.run(
                measure_case(strategies, baseline, shape(server.bases), server, args.repetitions)
            )
    if args.callgrind:
        variants = ["none", "passthrough", "least", "local"]
        results["callgrind"] = callgrind(None, args.callgrind, lambda _: None, names=variants)
    print(report(results, {name: chosen[name][1] for name in names}))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
