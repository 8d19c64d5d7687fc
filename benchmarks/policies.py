"""Issue 11's speed: what a site policy costs per request, and how closely a rate limit holds.

``python -m benchmarks policies`` (``--quick`` for a short check) runs only this; ``python -m benchmarks``
runs it after the rest. Against the usual loopback upstream (``benchmarks/upstream.py``, its own process
and core), one container entered once, 10 workers making calls in a row:

- ``overhead``: the variants below alternate, the order rotating, for several repetitions; medians,
  min-max, and the ratio to ``none`` within each repetition (drift between repetitions cancels);
  ``handheld`` (one ``ClientSession`` passed by hand) is there for scale:

  - ``none``: a registry without any policy;
  - ``passthrough``: no policy, the container's session given a middleware of the user's that only
    calls the next handler: what aiohttp's middleware support costs by itself, under any policy;
  - ``local``: ``SitePolicy(retry=Retry(), rate=RateLimit(NEVER, per=1))``, configured but never
    triggered (the server never fails, the limit is far above what the loopback can do);
  - ``redis``: the same with the limit shared through a real redis-server (``RedisLimit``), started as
    the tests start theirs (``tests/redis_server.py``);

- ``sequential``: the same variants, one call at a time: the time per request is its latency, so
  ``redis`` minus ``local`` is what the round trip to Redis adds;
- ``accuracy``: a limit that does make requests wait (``RateLimit(N, per=1)``), in one process, and
  shared through Redis by several processes; the server (in this process) timestamps every request as
  it arrives: the most arrivals in any window of ``per`` seconds, and the rate achieved once the first
  window's burst is spent (``(arrivals - N) / (last - first)``, ``N`` per ``per`` for a limit that
  holds exactly);
- ``callgrind`` (full run only, valgrind installed): client instructions per request for each variant,
  as the difference between a run of 2n and one of n requests after the same warm-up, so interpreter
  start-up and imports cancel.

Nothing here reads the limiter's internals: only requests, their timing at the server, and
``registry.stats()``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType

import asynctools
from asynctools import RateLimit, RedisLimit, Retry, SitePolicy

from .shapes import ONE_SITE, Run, Shape, Site, alternate, calls, read, workers
from .strategies import Tally
from .upstream import Http

ROOT = Path(__file__).parent.parent
NEVER = 1_000_000  # requests per second: far above what the loopback does, so the limiter never waits
VARIANTS = ("handheld", "none", "passthrough", "local", "redis")


def sizes(quick: bool) -> dict[str, Any]:
    """Requests per run, repetitions, the accuracy runs' limit and processes, callgrind's n."""
    if quick:
        return dict(
            workers=10,
            per_worker=30,
            sequential=100,
            repetitions=2,
            limit=20,
            processes=2,
            each=20,
            callgrind=0,
        )
    return dict(
        workers=10,
        per_worker=1000,
        sequential=2000,
        repetitions=15,
        limit=100,
        processes=4,
        each=150,
        callgrind=300,
    )


def policy(variant: str, redis_url: str | None) -> SitePolicy | None:
    """The policy of *variant*; ``redis`` counts under a key of its own (an empty window each run)."""
    if variant in ("handheld", "none", "passthrough", "least"):
        return None
    shared = None
    if variant == "redis":
        assert redis_url is not None
        shared = RedisLimit(redis_url, prefix=f"bench-{uuid.uuid4().hex}")
    return SitePolicy(retry=Retry(), rate=RateLimit(NEVER, per=1, redis=shared))


def passthrough(req: ClientRequest, handler: ClientHandlerType) -> Awaitable[ClientResponse]:
    """A client middleware that does nothing but call the next handler."""
    return handler(req)


class LeastPolicy:
    """The least a retry + rate-limit middleware can do per request, written inline for comparison
    (``benchmarks.ceiling``): the site looked up by its URL's spelling, a rate-limit log (a limit far out
    of reach), the requests in flight, the retry's status check; none of ``SiteState``'s other duties
    (concurrency limit, total retry time, figures, waking waiters).
    """

    def __init__(self) -> None:
        self.held, self.limit, self.in_flight = 0, NEVER, 0
        self.finished: collections.deque[float] = collections.deque(maxlen=NEVER)
        self.statuses = frozenset({429, 502, 503, 504})
        self.sites: dict[tuple[str, str], LeastPolicy] = {}

    def middleware(self, req: ClientRequest, handler: ClientHandlerType) -> Awaitable[ClientResponse]:
        url = req.url
        return self.sites.get((url.scheme, url.raw_authority), self).send(req, handler)

    def release(self) -> None:
        self.in_flight -= 1

    async def send(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if self.held + len(self.finished) >= self.limit:
            raise RuntimeError(f"least: the limit of {NEVER:,}/s was reached")
        self.held += 1
        self.in_flight += 1
        try:
            try:
                resp = await handler(req)
            finally:
                self.held -= 1
                self.finished.append(time.monotonic())
        except BaseException:
            self.in_flight -= 1
            raise
        connection = resp.connection
        if connection is None:
            self.in_flight -= 1
        else:
            connection.add_callback(self.release)
        if resp.status in self.statuses:
            raise RuntimeError(f"least: the upstream answered {resp.status}, to be retried")
        return resp


def variant_run(variant: str, redis_url: str | None) -> Run:
    """Run *s* through one container entered once, under *variant*'s policy: every worker's calls.

    Besides ``VARIANTS``, ``"least"``: a ``LeastPolicy`` middleware instead of a policy.
    """
    if variant == "handheld":
        return ONE_SITE["handheld"]

    async def run(s: Shape, tally: Tally) -> None:
        base = s.bases[0]
        chosen = policy(variant, redis_url)
        options: dict[str, Any] = {}
        if variant == "passthrough":
            options["middlewares"] = (passthrough,)
        elif variant == "least":
            options["middlewares"] = (LeastPolicy().middleware,)
        async with asynctools.SessionRegistry(policies={base: chosen} if chosen else None) as registry:
            async with Site(base, s, registry, **options) as api:

                async def visit(_: int) -> None:
                    await calls(s, api.fetch)

                await workers(range(s.containers), s.concurrency, visit)
            tally.sessions += registry.stats().created
            waits = sum(site.rate_waits for site in registry.stats().sites)
            if waits:  # the point of the variant is a limit that is configured but never triggered
                raise RuntimeError(f"{variant}: {waits} requests waited for a limit of {NEVER:,}/s")

    return run


def ratios(rows: dict[str, dict[str, Any]], name: str, baseline: str) -> dict[str, float]:
    """Median and min-max of *name*'s requests/s over *baseline*'s, repetition by repetition."""
    pairs = zip(rows[name]["samples_requests_per_s"], rows[baseline]["samples_requests_per_s"], strict=True)
    values = [a / b for a, b in pairs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def spread(row: dict[str, Any]) -> dict[str, float]:
    samples = row["samples_requests_per_s"]
    return {"min": min(samples), "max": max(samples)}


async def overhead(
    size: dict[str, Any], redis_url: str | None, advance: Callable[[str], None]
) -> dict[str, Any]:
    """The throughput and sequential shapes, variants alternating (``redis`` only with a server)."""
    from .endtoend import upstream

    names = [v for v in VARIANTS if v != "redis" or redis_url]
    runs = {name: variant_run(name, redis_url) for name in names}
    results: dict[str, Any] = {}
    with upstream(None) as server:
        shapes = {
            "concurrent": Shape(
                [server.base], None, containers=size["workers"], per_visit=size["per_worker"],
                concurrency=size["workers"],
            ),
            "sequential": Shape([server.base], None, containers=1, per_visit=size["sequential"]),
        }  # fmt: skip
        for shape_name, s in shapes.items():
            rows = await alternate(runs, s, server, size["repetitions"], advance)
            for name, row in rows.items():
                row["spread_requests_per_s"] = spread(row)
                row["us_per_request"] = 1e6 / row["requests_per_s"]
                row["vs_none"] = ratios(rows, name, "none")
            results[shape_name] = rows
    summary: dict[str, Any] = {
        "local_vs_none": results["concurrent"]["local"]["vs_none"],
        "passthrough_vs_none": results["concurrent"]["passthrough"]["vs_none"],
    }
    if redis_url:
        summary["redis_vs_local"] = ratios(results["concurrent"], "redis", "local")
        seq = results["sequential"]
        summary["redis_added_us_sequential"] = seq["redis"]["us_per_request"] - seq["local"]["us_per_request"]
        summary["local_added_us_sequential"] = seq["local"]["us_per_request"] - seq["none"]["us_per_request"]
    results["summary"] = summary
    return results


# -- accuracy: a limit that waits, timed at the server -----------------------------------------------


class Recording(Http):
    """The upstream's protocol, noting the time each request's head arrives (one clock for all)."""

    def __init__(self, arrivals: list[float]) -> None:
        super().__init__()
        self.arrivals = arrivals

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.arrivals.extend([now] * (self.buffer + data).count(b"\r\n\r\n"))
        super().data_received(data)


def most_in_window(arrivals: list[float], per: float) -> int:
    """The most arrivals in any half-open window ``[t, t + per)``."""
    times, most, first = sorted(arrivals), 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - per:
            first += 1
        most = max(most, last - first + 1)
    return most


async def accuracy(
    limit: int, processes: int, each: int, redis_url: str | None, concurrency: int = 10
) -> dict[str, Any]:
    """*processes* client processes, *each* requests apiece at *concurrency*, sharing ``limit``/s."""
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Recording(arrivals), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = {
        "base": f"http://127.0.0.1:{port}",
        "limit": limit,
        "requests": each,
        "concurrency": concurrency,
        "redis": redis_url,
        "prefix": f"bench-{uuid.uuid4().hex}",  # the processes of one run share it, and only they
    }
    clients = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.policies",
            "--client",
            json.dumps(config),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    try:
        for proc in clients:  # every process imported and ready: they start together
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"an accuracy client did not start: {line!r}")
        for proc in clients:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [(await proc.communicate())[0] for proc in clients]
    finally:
        server.close()
        await server.wait_closed()
    if any(proc.returncode for proc in clients):
        raise RuntimeError(f"an accuracy client failed: {[proc.returncode for proc in clients]}")
    figures = [json.loads(out.decode().strip().splitlines()[-1]) for out in outputs]
    total = processes * each
    if len(arrivals) != total:
        raise RuntimeError(f"the server saw {len(arrivals)} requests, not {total}")
    span = max(arrivals) - min(arrivals)
    achieved = (total - limit) / span if total > limit and span > 0 else float("nan")
    return {
        "limit_per_s": limit,
        "processes": processes,
        "requests": total,
        "concurrency_per_process": concurrency,
        "seconds": span,
        "max_in_any_window": most_in_window(arrivals, 1.0),
        "achieved_per_s": achieved,
        "achieved_vs_limit": achieved / limit,
        "rate_waits": sum(f["rate_waits"] for f in figures),
        "redis_errors": sum(f["redis_errors"] for f in figures),
    }


def client(config: dict[str, Any]) -> None:
    """One accuracy process: ready, wait for go, then its requests under the (shared) limit."""
    print("ready", flush=True)
    sys.stdin.readline()
    asyncio.run(client_run(config))


async def client_run(config: dict[str, Any]) -> None:
    base = config["base"]
    shared = RedisLimit(config["redis"], prefix=config["prefix"]) if config["redis"] else None
    rate = RateLimit(config["limit"], per=1, redis=shared)
    async with asynctools.SessionRegistry(policies={base: SitePolicy(rate=rate)}) as registry:
        async with registry.session(base) as session:
            s = Shape([base], None)

            async def visit(_: int) -> None:
                await read(session, base + "/item", s)

            await workers(range(config["requests"]), config["concurrency"], visit)
        (site,) = registry.stats().sites
        print(json.dumps({"rate_waits": site.rate_waits, "redis_errors": site.redis_errors}))


# -- callgrind: client instructions per request ------------------------------------------------------


def callgrind_child(variant: str, base: str, redis_url: str | None, n: int) -> None:
    """Inside valgrind: a warm-up, then *n* requests per worker (the parent subtracts two such runs)."""
    warm_up = Shape([base], None, containers=10, per_visit=5, concurrency=10)
    measured = Shape([base], None, containers=10, per_visit=n, concurrency=10)

    async def main() -> None:
        await variant_run(variant, redis_url)(warm_up, Tally())
        await variant_run(variant, redis_url)(measured, Tally())

    asyncio.run(main())


def callgrind_total(variant: str, base: str, redis_url: str | None, n: int, out: Path) -> int:
    from .callgrind import total_ir

    cg_out = out / f"policies.{variant}.{n}.out"
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_out}", sys.executable, "-m",
        "benchmarks.policies", "--callgrind-child", json.dumps([variant, base, redis_url, n]),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts, run after run
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return total_ir(cg_out)


def callgrind(
    redis_url: str | None,
    n: int,
    log: Callable[[str], None],
    jobs: int = 2,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Ir per request of each variant in *names* (default: all but handheld, redis if *redis_url*):
    (Ir(2n per worker) - Ir(n per worker)) / (10 n). *names* must include ``"none"``."""
    from .endtoend import upstream

    if names is None:
        names = ["none", "passthrough", "local"] + (["redis"] if redis_url else [])
    with tempfile.TemporaryDirectory() as tmp, upstream(None) as server:
        todo = [(name, size) for name in names for size in (n, 2 * n)]
        with ThreadPoolExecutor(jobs) as pool:
            totals = dict(
                zip(
                    todo,
                    pool.map(
                        lambda job: callgrind_total(job[0], server.base, redis_url, job[1], Path(tmp)), todo
                    ),
                    strict=True,
                )
            )
    rows: dict[str, Any] = {}
    for name in names:
        per_request = (totals[name, 2 * n] - totals[name, n]) / (10 * n)
        rows[name] = {"ir_per_request": per_request}
        log(f"callgrind policies {name}: {per_request:,.0f} Ir/request")
    for row in rows.values():
        row["vs_none"] = row["ir_per_request"] / rows["none"]["ir_per_request"]
    return {
        "method": f"(Ir of {2 * n} - Ir of {n} calls per worker) / {10 * n}, 10 workers, PYTHONHASHSEED=0",
        "variants": rows,
    }


# -- the whole workload ----------------------------------------------------------------------------


@contextmanager
def redis_if_installed() -> Iterator[str | None]:
    """A redis-server for the run (``tests/redis_server.py`` starts it), or ``None`` without one."""
    if shutil.which("redis-server") is None:
        yield None
        return
    from tests.redis_server import running_redis

    with tempfile.TemporaryDirectory() as tmp, running_redis(Path(tmp)) as url:
        yield url


async def measure(quick: bool, advance: Callable[[str], None], redis_url: str | None) -> dict[str, Any]:
    size = sizes(quick)
    results: dict[str, Any] = {
        "workload": {**size, "quick": quick, "never_limit_per_s": NEVER},
        "redis": redis_url is not None,
    }
    results["overhead"] = await overhead(size, redis_url, advance)
    per_process = size["processes"] * size["each"]
    results["accuracy"] = {"local": await accuracy(size["limit"], 1, per_process, None)}
    advance("accuracy local")
    if redis_url:
        results["accuracy"]["redis"] = await accuracy(
            size["limit"], size["processes"], size["each"], redis_url
        )
        advance("accuracy redis")
    return results


def steps(quick: bool) -> int:
    """Progress steps of ``measure``: each shape's repetitions of every variant, two accuracy runs."""
    return 2 * int(sizes(quick)["repetitions"]) * len(VARIANTS) + 2


def run_policies(
    quick: bool, advance: Callable[[str], None], callgrind_too: bool, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole workload (a redis-server of its own when installed); callgrind with *callgrind_too*."""
    with redis_if_installed() as redis_url:
        results = asyncio.run(measure(quick, advance, redis_url))
        if not redis_url:
            results["redis_skipped"] = "redis-server is not installed (Debian: apt-get install redis-server)"
        n = sizes(quick)["callgrind"]
        if callgrind_too and n and shutil.which("valgrind"):
            results["callgrind"] = callgrind(redis_url, n, log)
    return results


def main(argv: list[str] | None = None) -> int:
    """The child modes (an accuracy client, a callgrind run); ``python -m benchmarks policies`` otherwise."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.policies", description=__doc__)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.client:
        client(json.loads(args.client))
        return 0
    if args.callgrind_child:
        variant, base, redis_url, n = json.loads(args.callgrind_child)
        callgrind_child(variant, base, redis_url, n)
        return 0
    from .__main__ import main as bench_main

    return bench_main(["policies", *rest])


if __name__ == "__main__":
    sys.exit(main())
