"""``python -m benchmarks.pause``: attempts a site sees when it refuses past its quota and asks to wait.

The scenario of the "site is one thing" issue: a loopback server accepting 5 requests in any second and
answering 429 with ``Retry-After: 1`` past that; 20 concurrent GETs to it under
``SitePolicy(retry=Retry(attempts=20))``. Counts the attempts and refusals the server saw (before the
site-wide pause: 50 and 30 in about 3 s), over several runs, median and range.

python -m benchmarks.pause              # 5 runs, about 20 s
python -m benchmarks.pause --runs 1     # one
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from aiohttp import web
from aiohttp.test_utils import TestServer

from asynctools import Retry, SessionRegistry, SitePolicy

LIMIT, WINDOW, REQUESTS = 5, 1.0, 20


async def one_run() -> tuple[int, int, float]:
    """(attempts, refusals, seconds until the last answer) for one run of the scenario."""
    accepted: list[float] = []
    answers: list[int] = []

    async def handle(_: web.Request) -> web.Response:
        now = time.monotonic()
        if sum(t > now - WINDOW for t in accepted) >= LIMIT:
            answers.append(429)
            return web.Response(status=429, headers={"Retry-After": str(int(WINDOW))})
        accepted.append(now)
        answers.append(200)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/"))
    started = time.monotonic()
    async with SessionRegistry(policies={url: SitePolicy(retry=Retry(attempts=20))}) as registry:
        async with registry.session(url) as session:

            async def get() -> int:
                async with session.get(url) as resp:
                    return resp.status

            statuses = await asyncio.gather(*(get() for _ in range(REQUESTS)))
        await registry.close()
    elapsed = time.monotonic() - started
    await server.close()
    assert statuses == [200] * REQUESTS, statuses
    return len(answers), answers.count(429), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [asyncio.run(one_run()) for _ in range(args.runs)]
    for name, index in (("attempts", 0), ("refused", 1), ("seconds", 2)):
        values = [run[index] for run in runs]
        print(
            f"{name:>8}: median {statistics.median(values):.3g}, "
            f"min {min(values):.3g}, max {max(values):.3g} ({len(values)} runs)"
        )


if __name__ == "__main__":
    main()
