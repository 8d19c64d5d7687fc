"""End to end: every strategy on the same workload against an upstream in its own process."""

from __future__ import annotations

import asyncio
import gc
import json
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
    """``python -m benchmarks.upstream`` in subprocesses, with their connection count and CPU time.

    One process unless many ports are asked for: a process holds at most ``PORTS_PER_PROCESS``
    listening sockets, so that they and the connections it accepts stay under the fd limit.
    """

    def __init__(
        self, procs: list[subprocess.Popen[str]], bases: list[str], context: ssl.SSLContext | None
    ) -> None:
        self.procs, self.bases, self.ssl = procs, bases, context
        self.base = bases[0]
        # One origin per process is enough to ask it for its count.
        self.stats_bases = [bases[i * PORTS_PER_PROCESS] for i in range(len(procs))]
        self.own_connections = 0

    async def connections(self) -> int:
        """Connections accepted so far over every process, not counting those /__stats calls made."""
        total = 0
        self.own_connections += len(self.stats_bases)
        async with aiohttp.ClientSession() as session:
            for base in self.stats_bases:
                async with session.get(base + "/__stats", ssl=self.ssl or True) as resp:
                    total += int((await resp.json(content_type=None))["connections"])
        return total - self.own_connections

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        return total


PORTS_PER_PROCESS = 4000


@contextmanager
def upstream(tls: tuple[str, str, ssl.SSLContext] | None, ports: int = 1) -> Iterator[Upstream]:
    """The upstream listening on *ports* ports of 127.0.0.1 (that many origins), over HTTPS with *tls*."""
    args = [sys.executable, "-m", "benchmarks.upstream"]
    if tls:
        args += ["--certfile", tls[0], "--keyfile", tls[1]]
    shares = [min(PORTS_PER_PROCESS, ports - start) for start in range(0, ports, PORTS_PER_PROCESS)]
    procs = [
        subprocess.Popen([*args, "--ports", str(share)], stdout=subprocess.PIPE, text=True)
        for share in shares
    ]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        # Client and server on cores of their own: neither steals the other's time slices.
        for proc in procs:
            os.sched_setaffinity(proc.pid, {cores[-1]})
        os.sched_setaffinity(0, set(cores[:-1]))
    try:
        numbers: list[int] = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            numbers += json.loads(line) if line.startswith("[") else [int(line)]
        scheme = "https" if tls else "http"
        yield Upstream(procs, [f"{scheme}://127.0.0.1:{port}" for port in numbers], tls[2] if tls else None)
    finally:
        os.sched_setaffinity(0, set(cores))
        for proc in procs:
            proc.terminate()
        for proc in procs:
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
        "connections": await server.connections() - connections_before,
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
    """A throw-away CA and a certificate for 127.0.0.1 (trustme), and a client context trusting it.

    The certificate's IP SAN covers every port of 127.0.0.1, so every origin of the many-sites shape;
    the CA goes to *directory*/ca.pem for client processes of their own (callgrind).
    """
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(os.path.join(directory, "ca.pem"))
    certfile, keyfile = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return certfile, keyfile, context
