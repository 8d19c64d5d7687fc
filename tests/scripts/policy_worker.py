"""One process of the multi-process Redis rate-limit test: fire requests as fast as the shared limit allows.

Usage: ``policy_worker.py URL REDIS_URL PREFIX REQUESTS DURATION TASKS``. Builds a ``SessionRegistry``
whose policy for URL's origin is ``RateLimit(REQUESTS, per=1, redis=RedisLimit(REDIS_URL, prefix=PREFIX))``,
prints ``ready`` and waits for a line on stdin (so that every process starts together, whatever its
start-up took), then runs TASKS tasks, each sending GET URL in a loop, for DURATION seconds of its loop
clock. Then it cancels what is still waiting for the limit and prints one JSON line: requests answered,
and the site's figures afterwards (``in_flight``, ``rate_waiting``, the registry's ``in_use``).
"""

from __future__ import annotations

import asyncio
import json
import sys

from asynctools import RateLimit, RedisLimit, SessionRegistry, SitePolicy


async def main(url: str, redis_url: str, prefix: str, requests: int, duration: float, tasks: int) -> None:
    shared = RedisLimit(redis_url, prefix=prefix)
    policy = SitePolicy(retry=None, rate=RateLimit(requests, per=1, redis=shared))
    registry = SessionRegistry(policies={url: policy})
    answered = 0

    async def fire() -> None:
        nonlocal answered
        async with registry.session(url) as session:
            while True:
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                answered += 1

    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    workers = [asyncio.create_task(fire()) for _ in range(tasks)]
    await asyncio.sleep(duration)
    for worker in workers:
        worker.cancel()
    results = await asyncio.gather(*workers, return_exceptions=True)
    errors = [repr(r) for r in results if not isinstance(r, asyncio.CancelledError)]
    stats = registry.stats()
    (site,) = stats.sites
    print(
        json.dumps(
            {
                "answered": answered,
                "errors": errors,
                "in_flight": site.in_flight,
                "rate_waiting": site.rate_waiting,
                "in_use": stats.in_use,
                "redis_errors": site.redis_errors,
            }
        ),
        flush=True,
    )
    await registry.close()


if __name__ == "__main__":
    url, redis_url, prefix, requests, duration, tasks = sys.argv[1:]
    asyncio.run(main(url, redis_url, prefix, int(requests), float(duration), int(tasks)))
