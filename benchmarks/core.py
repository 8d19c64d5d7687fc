"""Core numbers for asynctools: hot-path cost in-process, and end-to-end throughput against a loopback server.

python -m benchmarks.core            # full run (about a minute)
python -m benchmarks.core --quick    # a few seconds, to check that it works
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

import asynctools

# -- in-process micro-benchmarks ---------------------------------------------------------------------


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
        }
    await registry.close()
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


# -- end to end --------------------------------------------------------------------------------------


@contextlib.contextmanager
def upstream_process(tls: tuple[str, str] | None):
    args = [sys.executable, "-m", "benchmarks.upstream"]
    if tls:
        args += ["--certfile", tls[0], "--keyfile", tls[1]]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait()


@dataclass
class Workload:
    base: str
    containers: int
    concurrency: int
    rounds: int
    ssl: object


async def connections(base: str, ssl: object) -> int:
    async with aiohttp.ClientSession() as session, session.get(base + "/__stats", ssl=ssl) as resp:
        return int((await resp.json(content_type=None))["connections"])


class Fetcher:
    def __init__(self, session: aiohttp.ClientSession, base: str, ssl: object) -> None:
        self.session, self.base, self.ssl = session, base, ssl

    async def fetch(self) -> bytes:
        async with self.session.get(self.base + "/item", ssl=self.ssl) as resp:
            return await resp.read()


class Api(asynctools.AbstractSessionContainer):
    ssl: object = None

    @asynctools.attach_session
    async def fetch(self, session: aiohttp.ClientSession | None = None) -> bytes:
        assert session is not None and self.base_url is not None
        async with session.get(self.base_url.with_path("/item"), ssl=self.ssl) as resp:
            return await resp.read()


async def rounds(w: Workload, fetchers: list[Callable[[], Awaitable[bytes]]]) -> None:
    for _ in range(w.rounds):
        await asyncio.gather(*(fetch() for fetch in fetchers for _ in range(w.concurrency)))


@contextlib.asynccontextmanager
async def handheld(w: Workload) -> AsyncIterator[list[Callable[[], Awaitable[bytes]]]]:
    async with aiohttp.ClientSession() as session:
        yield [Fetcher(session, w.base, w.ssl).fetch for _ in range(w.containers)]


def make_apis(w: Workload, registry: asynctools.SessionRegistry) -> list[Api]:
    apis = [Api(w.base, registry=registry) for _ in range(w.containers)]
    for api in apis:
        api.ssl = w.ssl
    return apis


@contextlib.asynccontextmanager
async def containers(w: Workload) -> AsyncIterator[list[Callable[[], Awaitable[bytes]]]]:
    async with asynctools.SessionRegistry() as registry, contextlib.AsyncExitStack() as stack:
        apis = make_apis(w, registry)
        for api in apis:
            await stack.enter_async_context(api)
        yield [api.fetch for api in apis]


@contextlib.asynccontextmanager
async def unattached(w: Workload) -> AsyncIterator[list[Callable[[], Awaitable[bytes]]]]:
    async with asynctools.SessionRegistry() as registry:
        yield [api.fetch for api in make_apis(w, registry)]


STRATEGIES = {"handheld": handheld, "containers": containers, "unattached": unattached}


async def end_to_end(w: Workload, repetitions: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in STRATEGIES}
    requests = w.containers * w.concurrency * w.rounds
    for _ in range(repetitions):
        for name, strategy in STRATEGIES.items():  # alternated, so drift hits every strategy alike
            before = await connections(w.base, w.ssl)
            start = time.perf_counter()
            async with strategy(w) as fetchers:
                await rounds(w, fetchers)
            elapsed = time.perf_counter() - start
            opened = await connections(w.base, w.ssl) - before - 1  # not the /__stats request's own
            samples[name].append((requests / elapsed, opened))
    results = {
        name: {
            "requests_per_s": statistics.median(rps for rps, _ in runs),
            "connections": statistics.median(c for _, c in runs),
        }
        for name, runs in samples.items()
    }
    for row in results.values():
        row["ratio"] = row["requests_per_s"] / results["handheld"]["requests_per_s"]
    return results


def make_tls(directory: str) -> tuple[tuple[str, str], object] | None:
    try:
        import trustme
    except ImportError:
        return None
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    cert.cert_chain_pems[0].write_to_path(certfile)
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(certfile, append=True)
    cert.private_key_pem.write_to_path(keyfile)
    import ssl

    context = ssl.create_default_context()
    ca.configure_trust(context)
    return (certfile, keyfile), context


async def run(quick: bool) -> dict[str, object]:
    n, repeats = (20_000, 3) if quick else (200_000, 5)
    report: dict[str, object] = {"python": sys.version.split()[0], "aiohttp": aiohttp.__version__}
    report["micro"] = await micro(n, repeats)
    report["acquire_ns"] = {
        str(keys): await acquire_cost(keys, n // 4, repeats)
        for keys in ((10, 1000) if quick else (10, 1000, 10_000))
    }
    workload = dict(containers=100, concurrency=5, rounds=2 if quick else 10)
    reps = 1 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        with upstream_process(None) as port:
            await asyncio.sleep(0.2)
            report["http"] = await end_to_end(
                Workload(f"http://127.0.0.1:{port}", ssl=None, **workload), reps
            )
        tls = make_tls(tmp)
        if tls is not None:
            with upstream_process(tls[0]) as port:
                await asyncio.sleep(0.2)
                report["https"] = await end_to_end(
                    Workload(f"https://127.0.0.1:{port}", ssl=tls[1], **workload), reps
                )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run, to check that the harness works")
    args = parser.parse_args()
    report = asyncio.run(run(args.quick))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
