"""Soak: many containers, many calls, random cancellations, a flaky upstream; nothing may pile up.

    python tests/soak.py                      # the full run: 1,000 containers x 100 calls, about 60 s
    python tests/soak.py --seconds 8 --calls 10   # the shortened run CI makes (tests/test_soak.py)

Prints one JSON line of figures; exits 1 if a check fails. Loopback only, bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

import asynctools

UPSTREAM = """
import asyncio, random
from aiohttp import web

async def handler(request):
    roll = random.random()
    if roll < 0.05:
        return web.Response(status=500, text="flaky")
    if roll < 0.08:
        request.transport.abort()  # the connection dies mid-request
        return web.Response(text="never sent")
    if roll < 0.15:
        await asyncio.sleep(random.uniform(0.01, 0.05))
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Api(asynctools.AbstractSessionContainer):
    @asynctools.attach_session
    async def call(self, session: aiohttp.ClientSession | None = None) -> str:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/item")) as resp:
            return await resp.text()


async def soak(port: int, args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    registry = asynctools.SessionRegistry(idle_timeout=1.0)
    base = f"http://127.0.0.1:{port}"
    containers = [
        Api(base, registry=registry, raise_for_status=True, headers={"X-Key": str(i % args.keys)})
        for i in range(args.containers)
    ]
    fds_start, deadline, warm_at = (
        open_fds(),
        time.monotonic() + args.seconds,
        time.monotonic() + args.seconds / 5,
    )
    remaining = {id(c): args.calls for c in containers}
    outcomes = {"ok": 0, "error": 0, "cancelled": 0}
    rss_warm: float | None = None
    rss_peak_after_warm = 0.0

    async def one(api: Api, attached: bool) -> None:
        if attached:
            async with api:
                await api.call()
        else:
            await api.call()

    while remaining and time.monotonic() < deadline:
        batch = rng.sample(containers, k=min(args.batch, len(containers)))
        tasks = [
            asyncio.ensure_future(one(api, rng.random() < 0.5)) for api in batch if remaining.get(id(api))
        ]
        await asyncio.sleep(0)
        for task in tasks:
            if rng.random() < 0.05:
                task.cancel()  # random cancellations, at whatever await each call has reached
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, asyncio.CancelledError):
                outcomes["cancelled"] += 1
            elif isinstance(result, BaseException):
                outcomes["error"] += 1
            else:
                outcomes["ok"] += 1
        for api in batch:
            if remaining.get(id(api)):
                remaining[id(api)] -= 1
                if not remaining[id(api)]:
                    del remaining[id(api)]
        if time.monotonic() >= warm_at:
            if rss_warm is None:
                rss_warm = rss_mb()
            rss_peak_after_warm = max(rss_peak_after_warm, rss_mb())
    stats = registry.stats()
    await registry.close()
    await asyncio.sleep(0.1)  # let the closed transports release their file descriptors
    figures: dict[str, object] = {
        "seconds": round(args.seconds - max(0.0, deadline - time.monotonic()), 1),
        "calls": sum(outcomes.values()),
        **outcomes,
        "keys": args.keys,
        "in_use_at_end": stats.in_use,
        "open_sessions_at_end": stats.open,
        "sessions_created": stats.created,
        "fds_start": fds_start,
        "fds_end": open_fds(),
        "rss_after_warmup_mb": round(rss_warm or rss_mb(), 1),
        "rss_peak_after_warmup_mb": round(rss_peak_after_warm or rss_mb(), 1),
    }
    rss_growth = figures["rss_peak_after_warmup_mb"] / figures["rss_after_warmup_mb"] - 1  # type: ignore[operator]
    figures["rss_growth"] = round(rss_growth, 3)
    figures["checks"] = {
        "counts_zero": stats.in_use == 0,
        "open_sessions_within_keys": stats.open <= args.keys,
        "fds_back_to_start": figures["fds_end"] == fds_start,
        "rss_flat_within_10_percent": rss_growth <= 0.10,
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True)
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        figures = asyncio.run(soak(port, args))
    finally:
        upstream.terminate()
        upstream.wait()
        if upstream.stdout is not None:
            upstream.stdout.close()
    print(json.dumps(figures))
    return 0 if all(figures["checks"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
