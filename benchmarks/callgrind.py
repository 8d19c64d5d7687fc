"""``python -m benchmarks.callgrind``: instructions per request, counted by valgrind, for the main ratios.

Wall time on a shared 2-core machine moves by several percent between runs; instruction counts
(``Ir``) repeat to a fraction of a percent. Each (case, scheme, strategy) runs in a valgrind process of
its own against the usual upstream (outside valgrind): the strategy runs once to warm up (the same
shape), then once more inside a ctypes call (``lfind`` calling back into Python), and callgrind
collects only inside ``ffi_call`` (``--collect-atstart=no --toggle-collect=ffi_call``), so interpreter
start-up, imports and the warm-up are not counted. Ir per request is the collected total over the
requests of that run, sessions, connectors and handshakes included; the ratio is to ``handheld`` on the
same case.

python -m benchmarks.callgrind                 # every case, HTTP and HTTPS: 5-10 minutes here
python -m benchmarks.callgrind --update FILE   # and merge the counts into a latest.json
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .strategies import STRATEGIES, Tally, Workload

STRATEGY_NAMES = ("handheld", "containers", "unattached")
SITES = 100  # origins in the many-sites case: small enough for valgrind


def case_run(
    case: str, name: str, bases: list[str], context: ssl.SSLContext | None, scale: float = 1.0
) -> tuple[Callable[[Tally], Coroutine[Any, Any, None]], int]:
    """The coroutine function running *name* on *case*, and how many requests it makes."""
    from .shapes import ONE_SITE, Shape
    from .shapes import SITES as SITE_RUNS

    def n(count: int) -> int:
        return max(2, int(count * scale))

    if case == "single":  # the end-to-end shape, smaller: containers x concurrent calls x rounds
        w = Workload(bases[0], containers=n(10), concurrency=5, rounds=2, ssl=context)

        async def single(tally: Tally) -> None:
            async with STRATEGIES[name](w, tally) as fetchers:
                for _ in range(w.rounds):
                    await asyncio.gather(*(fetch() for fetch in fetchers for _ in range(w.concurrency)))

        return single, w.requests
    if case == "sites":
        s = Shape(bases[: n(SITES)], context, per_visit=2, rounds=2, concurrency=10)
        runs = SITE_RUNS
    elif case == "sequential":
        s = Shape(bases[:1], context, per_visit=n(200), pause=True)
        runs = ONE_SITE
    elif case == "entered":
        s = Shape(bases[:1], context, containers=n(200), concurrency=10)
        runs = ONE_SITE
    else:
        raise ValueError(f"unknown case {case!r}")
    run = runs[name]
    return (lambda tally: run(s, tally)), s.requests


CASES = {
    "single": "one site, 10 containers x 5 concurrent calls x 2 rounds",
    "sequential": "one site, 200 calls in a row, await asyncio.sleep(0) between them",
    "sites": f"{SITES} origins x 2 requests per visit x 2 rounds, 10 workers",
    "entered": "200 containers for one site, each entered with async with for one call, 10 workers",
}


def child(case: str, name: str, bases: list[str], cafile: str | None, scale: float) -> None:
    """Inside valgrind: warm up, then run once inside ffi_call (the only code callgrind counts)."""
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    run, requests = case_run(case, name, bases, context, scale)
    # The same shape: what a long-running program works out once per site (its base URL parsed, its
    # key made) is out of the count, as it is after the first of the wall-time repetitions.
    warm_up, _ = case_run(case, name, bases, context, scale)
    tally, failure = Tally(), []
    loop = asyncio.new_event_loop()  # by hand: asyncio.Runner is 3.11+
    try:
        loop.run_until_complete(warm_up(Tally()))

        def measured(_a: int, _b: int) -> int:
            try:
                loop.run_until_complete(run(tally))
            except BaseException as exc:  # a ctypes callback cannot raise: carry it out
                failure.append(exc)
            return 0

        callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(measured)
        libc = ctypes.CDLL(None)
        libc.lfind.restype = ctypes.c_void_p
        key, count = ctypes.c_int(0), ctypes.c_size_t(1)
        libc.lfind(ctypes.byref(key), ctypes.byref(key), ctypes.byref(count), ctypes.sizeof(key), callback)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    if failure:
        raise failure[0]
    print(json.dumps({"requests": requests, "sessions": tally.sessions}))


def total_ir(path: Path) -> int:
    """The collected instruction count of a callgrind output file (its ``totals:``/``summary:`` line)."""
    for line in path.read_text().splitlines():
        match = re.match(r"(?:totals|summary):\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise ValueError(f"{path} has no totals: or summary: line")


def count(
    case: str, name: str, scheme: str, bases_file: Path, cafile: str | None, scale: float, out: Path
) -> dict[str, float]:
    """One valgrind process for *name* on *case*: its Ir, requests, Ir per request, sessions."""
    cg_out = out / f"callgrind.{case}.{scheme}.{name}"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={cg_out}",
        "--collect-atstart=no",
        "--toggle-collect=ffi_call",
        sys.executable,
        "-m",
        "benchmarks.callgrind",
        "--child",
        case,
        name,
        "--bases-file",
        str(bases_file),
        "--scale",
        str(scale),
    ]
    if cafile:
        command += ["--cafile", cafile]
    cores = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts, run after run
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),  # not pinned to the client's core
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    info = json.loads(result.stdout.strip().splitlines()[-1])
    ir = total_ir(cg_out)
    return {
        "ir": ir,
        "requests": info["requests"],
        "ir_per_request": ir / info["requests"],
        "sessions": info["sessions"],
    }


def measure_all(
    cases: list[str],
    schemes: list[str],
    scale: float = 1.0,
    jobs: int = 2,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every case x scheme x strategy under callgrind, *jobs* valgrind processes at a time."""
    from .endtoend import make_tls, upstream

    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    results: dict[str, Any] = {
        "cases": {case: CASES[case] for case in cases},
        "scale": scale,
        "method": "Ir collected inside the measured run only (--toggle-collect=ffi_call), PYTHONHASHSEED=0",
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        tls = make_tls(tmp)
        for scheme in schemes:
            with upstream(tls if scheme == "https" else None, ports=SITES) as server:
                bases_file = out / f"bases.{scheme}.json"
                bases_file.write_text(json.dumps(server.bases))
                cafile = str(out / "ca.pem") if scheme == "https" else None
                todo = [(case, name) for case in cases for name in STRATEGY_NAMES]
                with ThreadPoolExecutor(jobs) as pool:
                    futures = {
                        job: pool.submit(count, *job, scheme, bases_file, cafile, scale, out) for job in todo
                    }
                    rows: dict[str, dict[str, dict[str, float]]] = {case: {} for case in cases}
                    for (case, name), future in futures.items():
                        row = rows[case][name] = future.result()
                        log(f"callgrind {scheme} {case} {name}: {row['ir_per_request']:,.0f} Ir/request")
                for case_rows in rows.values():
                    base = case_rows["handheld"]["ir_per_request"]
                    for row in case_rows.values():
                        row["ratio"] = row["ir_per_request"] / base
                results[scheme] = rows
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.callgrind",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "STRATEGY"), help=argparse.SUPPRESS)
    parser.add_argument("--bases-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    parser.add_argument("--schemes", default="http,https")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the request counts (a quick check: 0.1)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="valgrind processes at a time")
    parser.add_argument("--update", type=Path, help="merge the counts into this latest.json as 'callgrind'")
    args = parser.parse_args(argv)
    if args.child:
        assert args.bases_file is not None
        case, name = args.child
        child(case, name, json.loads(args.bases_file.read_text()), args.cafile, args.scale)
        return 0
    results = measure_all(args.cases.split(","), args.schemes.split(","), args.scale, args.jobs)
    print(json.dumps(results, indent=2))
    if args.update:
        latest = json.loads(args.update.read_text())
        latest["callgrind"] = results
        args.update.write_text(json.dumps(latest, indent=2) + "\n")
        print(f"merged into {args.update}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
