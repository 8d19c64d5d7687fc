"""End to end: every strategy on the same workload against an upstream in its own process."""

from __future__ import annotations

import asyncio
import gc
import os
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from .strategies import STRATEGIES, Fetch, Tally, Workload

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Upstream:
    """``python -m benchmarks.upstream`` in a subprocess, with its connection count and CPU time."""

    def __init__(self, proc: subprocess.Popen[str], base: str, context: ssl.SSLContext | None) -> None:
        self.proc, self.base, self.ssl = proc, base, context

    async def connections(self) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + "/__stats", ssl=self.ssl or True) as resp,
        ):
            return int((await resp.json(content_type=None))["connections"])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


@contextmanager
def upstream(tls: tuple[str, str, ssl.SSLContext] | None) -> Iterator[Upstream]:
    args = [sys.executable, "-m", "benchmarks.upstream"]
    if tls:
        args += ["--certfile", tls[0], "--keyfile", tls[1]]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        # Client and server on cores of their own: neither steals the other's time slices.
        os.sched_setaffinity(proc.pid, {cores[-1]})
        os.sched_setaffinity(0, set(cores[:-1]))
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        scheme = "https" if tls else "http"
        yield Upstream(proc, f"{scheme}://127.0.0.1:{port}", tls[2] if tls else None)
    finally:
        os.sched_setaffinity(0, set(cores))
        proc.terminate()
        proc.wait()


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


async def sample_peak_rss(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_bytes())
        await asyncio.sleep(0.005)


async def measure(name: str, w: Workload, server: Upstream) -> dict[str, float]:
    """Run strategy *name* once; return its throughput, latencies, connections, sessions, memory, CPU."""
    tally, latencies = Tally(), []

    async def timed(fetch: Fetch) -> None:
        start = time.perf_counter()
        await fetch()
        latencies.append(time.perf_counter() - start)

    gc.collect()  # garbage left by the previous strategy is not this one's to collect
    connections_before = await server.connections()
    peak, stop = [rss_bytes()], asyncio.Event()
    rss_before = peak[0]
    sampler = asyncio.ensure_future(sample_peak_rss(peak, stop))
    cpu, server_cpu, start = time.process_time(), server.cpu_seconds(), time.perf_counter()
    async with STRATEGIES[name](w, tally) as fetchers:
        for _ in range(w.rounds):
            await asyncio.gather(*(timed(fetch) for fetch in fetchers for _ in range(w.concurrency)))
    elapsed = time.perf_counter() - start
    cpu, server_cpu = time.process_time() - cpu, server.cpu_seconds() - server_cpu
    stop.set()
    await sampler
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "requests_per_s": w.requests / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "connections": await server.connections() - connections_before - 1,  # not /__stats' own
        "sessions": tally.sessions,
        "peak_rss_mb": peak[0] / 2**20,
        "rss_growth_mb": (peak[0] - rss_before) / 2**20,
        "client_cpu_s": cpu,
        "server_cpu_s": server_cpu,
    }


# The strategies the 0.95x target compares: their differences are small next to the spread of a
# few samples, so they get more repetitions than the slow ones.
CORE = ("handheld", "containers", "unattached")


async def compare(
    w: Workload, server: Upstream, repetitions: int, core_repetitions: int, advance: Callable[[str], None]
) -> dict[str, dict[str, float]]:
    """Every strategy *repetitions* times (``CORE`` *core_repetitions* times); medians and ratios.

    The order rotates in each repetition, so that no strategy always follows the same one (a slow
    strategy leaves the server and the allocator in a state the next one pays for). A strategy's ratio
    to handheld is the median of its ratios within each repetition: drift between repetitions cancels.
    """
    names = list(STRATEGIES)
    for name in names:  # warm-up: imports, TLS contexts, the server's first accepts, the allocator
        await measure(name, w, server)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for repetition in range(max(repetitions, core_repetitions)):
        todo = names if repetition < repetitions else list(CORE)
        shift = repetition % len(todo)
        for name in todo[shift:] + todo[:shift]:
            runs[name].append(await measure(name, w, server))
            advance(name)
    results = {
        name: {field: statistics.median(run[field] for run in samples) for field in samples[0]}
        for name, samples in runs.items()
    }
    baseline = [run["requests_per_s"] for run in runs["handheld"]]
    for name, row in results.items():
        samples = [run["requests_per_s"] for run in runs[name]]
        row["ratio"] = statistics.median(
            s / b for s, b in zip(samples, baseline[: len(samples)], strict=True)
        )
        row["samples_requests_per_s"] = samples  # type: ignore[assignment]
    return results


def make_tls(directory: str) -> tuple[str, str, ssl.SSLContext]:
    """A throw-away CA and a certificate for 127.0.0.1 (trustme), and a client context trusting it."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return certfile, keyfile, context
