"""``python -m benchmarks.throughput``: the share of a stated rate limit a site actually gets, by answer time.

A place in a ``RateLimit`` is held from the moment a request is sent until its answer arrives, then for
``per`` seconds more: that keeps every window the server can count within the limit, whatever the
network does, but a site whose answers take *d* seconds gets at most ``requests / (per + d)`` a second.
This measures it: a loopback server answering after 10 ms, 300 ms and 1 s, ``RateLimit(20, per=1)``,
60 workers requesting as fast as the limit lets them for a few seconds; the server stamps arrivals, and
the share is the arrivals of the steady seconds over the limit. The busiest one-second window at the
server is reported beside it (it must never exceed 20).

Counting a place from its send instead (tried, not kept): 98% of the limit with 1 s answers, but the
server's busiest second held 27 to 40 of 20, since the first burst's requests wait for new connections
and reach the server later than the next window's, on warm ones: the guarantee would be gone.

python -m benchmarks.throughput              # about 30 s
python -m benchmarks.throughput --seconds 3  # shorter
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestServer

from asynctools import RateLimit, SessionRegistry, SitePolicy

LIMIT, PER, WORKERS = 20, 1.0, 60


def busiest_window(arrivals: list[float], width: float) -> int:
    """The most arrivals in any window of *width* seconds."""
    most, start = 0, 0
    for end, t in enumerate(arrivals):
        while arrivals[start] <= t - width:
            start += 1
        most = max(most, end - start + 1)
    return most


async def one_run(answer: float, seconds: float) -> tuple[float, int]:
    """(share of the limit achieved in the steady part, busiest window) for answers taking *answer* s."""
    arrivals: list[float] = []

    async def handle(_: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        await asyncio.sleep(answer)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/"))
    policy = SitePolicy(retry=None, rate=RateLimit(LIMIT, per=PER))
    async with SessionRegistry(policies={url: policy}) as registry, registry.session(url) as session:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop:
                async with session.get(url) as resp:
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        await registry.close()
    await server.close()
    # Steady part: whole windows from the first one's end (its burst takes the whole limit at once).
    first = arrivals[0] + PER
    windows = int((arrivals[-1] - first) / PER)
    counted = sum(first <= t < first + windows * PER for t in arrivals)
    share = counted / (windows * LIMIT) if windows else 0.0
    return share, busiest_window(arrivals, PER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    for answer in (0.01, 0.3, 1.0):
        share, busiest = asyncio.run(one_run(answer, args.seconds))
        bound = 1.0 / (1.0 + answer / PER)
        print(
            f"answers in {answer * 1000:>5.0f} ms: {share:6.1%} of the limit (bound {bound:.1%}); "
            f"busiest second at the server: {busiest}/{LIMIT}"
        )


if __name__ == "__main__":
    main()
