"""``python -m benchmarks``: prove the pooling pays, side by side with the alternatives, over HTTP and HTTPS.

python -m benchmarks                 # full run, about 25 minutes here; writes benchmarks/results/
python -m benchmarks --quick         # about a minute: proves the harness works (no callgrind)
python -m benchmarks --readme        # rewrite docs/performance.md's section from latest.json
python -m benchmarks.callgrind       # only the instruction counts (part of the full run)
python -m benchmarks.opcodes         # Python bytecodes per request, function by function, against
                                     # handheld: where the instructions go (not part of the full run)
python -m benchmarks.ceiling         # beside asynctools, the least any design of its kind could cost
                                     # (a few minutes; not part of the full run)
python -m benchmarks policies        # only issue 11's site policies (benchmarks/policies.py), a few
                                     # minutes; --quick: seconds; writes benchmarks/results/policies.json

Besides the end-to-end comparison and the micro-benchmarks, it runs issue 10's shapes
(``benchmarks/shapes.py``): many sites (N origins, 10 to 10,000; 10 and 100 with --quick), sequential
calls with the loop running between them, and many containers entered once each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.progress import Progress

from .endtoend import CORE, compare, make_tls, upstream
from .micro import run_micro
from .policies import run_policies, steps
from .report import chart, print_policies, print_tables, sites_chart, targets, update_policies, update_readme
from .shapes import ONE_SITE, SITES, Shape, alternate
from .strategies import STRATEGIES, Workload

HERE = Path(__file__).parent
README = HERE.parent / "docs" / "performance.md"


def sizes(quick: bool) -> dict[str, Any]:
    """Issue 10's shapes: origins and repetitions per N, calls in a row, containers entered."""
    if quick:
        return dict(origins={10: 1, 100: 1}, sequential=200, entered=300, one_site_repetitions=1)
    # 10,000 origins: one repetition and no httpx (minutes per strategy over HTTPS).
    return dict(
        origins={10: 7, 100: 5, 1000: 3, 10_000: 1}, sequential=2000, entered=10_000, one_site_repetitions=5
    )


SITES_SHAPE = dict(per_visit=2, rounds=3, concurrency=10)


async def run_shapes(
    quick: bool, tls: tuple[str, str, Any], progress: Progress, results: dict[str, Any]
) -> None:
    size = sizes(quick)
    steps = (
        sum(reps * (len(SITES) - (n > 1000)) for n, reps in size["origins"].items())
        + 2 * len(ONE_SITE) * size["one_site_repetitions"]
    )
    task = progress.add_task("issue 10 shapes", total=2 * steps)
    results["sites"], results["one_site"] = {}, {"sequential": {}, "entered": {}}
    for scheme, scheme_tls in (("http", None), ("https", tls)):
        with upstream(scheme_tls, ports=max(size["origins"])) as server:
            # One site first, then many sites. (Entered over HTTPS once measured 0.71x here and 0.86x in
            # a process of its own: the HTTP stage's 10,000 origins had filled a first-come cache of
            # base URLs for good, so every container of the HTTPS stage parsed its own. Fixed: LRU.)
            one = {
                "sequential": Shape(server.bases[:1], server.ssl, per_visit=size["sequential"], pause=True),
                "entered": Shape(server.bases[:1], server.ssl, containers=size["entered"], concurrency=10),
            }
            for shape_name, s in one.items():

                def advance_one(name: str, scheme: str = scheme, shape_name: str = shape_name) -> None:
                    progress.update(task, description=f"{scheme} {shape_name} {name}", advance=1)

                results["one_site"][shape_name][scheme] = await alternate(
                    ONE_SITE, s, server, size["one_site_repetitions"], advance_one
                )
            per_n: dict[str, Any] = {}
            for n, reps in size["origins"].items():
                strategies = {k: v for k, v in SITES.items() if not (k == "httpx" and n > 1000)}
                s = Shape(
                    server.bases[:n],
                    server.ssl,
                    per_visit=SITES_SHAPE["per_visit"],
                    rounds=SITES_SHAPE["rounds"],
                    concurrency=SITES_SHAPE["concurrency"],
                )

                def advance(name: str, scheme: str = scheme, n: int = n) -> None:
                    progress.update(task, description=f"{scheme} {n} sites {name}", advance=1)

                per_n[str(n)] = await alternate(strategies, s, server, reps, advance, warm_up=n <= 1000)
            results["sites"][scheme] = per_n
    results["workload"]["shapes"] = {
        "origins": {str(n): reps for n, reps in size["origins"].items()},
        **SITES_SHAPE,
        "sequential": size["sequential"],
        "entered": size["entered"],
        "one_site_repetitions": size["one_site_repetitions"],
    }


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    import asynctools

    return {
        "description": f"{os.cpu_count()} cores ({cpu}), {platform.system()}",
        "asynctools": str(Path(asynctools.__file__).parent),
        "asynctools_commit": os.environ.get("ASYNCTOOLS_COMMIT", "the working tree"),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "httpx": httpx.__version__,
    }


async def run(quick: bool, progress: Progress) -> dict[str, Any]:
    shape = (
        dict(containers=100, concurrency=2, rounds=1)
        if quick
        else dict(containers=100, concurrency=5, rounds=4)
    )
    repetitions, core_repetitions = (1, 1) if quick else (3, 9)
    results: dict[str, Any] = {
        "machine": machine(),
        "workload": {
            **shape,
            "repetitions": repetitions,
            "core_repetitions": core_repetitions,
            "quick": quick,
        },
    }
    steps = repetitions * len(STRATEGIES) + (core_repetitions - repetitions) * len(CORE)
    task = progress.add_task("micro-benchmarks", total=1 + 2 * steps)
    results["micro"] = await run_micro(quick)
    progress.advance(task)
    with tempfile.TemporaryDirectory() as tmp:
        tls = make_tls(tmp)
        await run_shapes(quick, tls, progress, results)
        for scheme, scheme_tls in (("http", None), ("https", tls)):
            with upstream(scheme_tls) as server:
                w = Workload(server.base, ssl=server.ssl, **shape)

                def advance(name: str, scheme: str = scheme) -> None:
                    progress.update(task, description=f"{scheme} {name}", advance=1)

                results[scheme] = await compare(w, server, repetitions, core_repetitions, advance)
    results["targets"] = targets(results)
    return results


def policies(args: argparse.Namespace) -> None:
    """Issue 11's workload: run it, write policies.json, print its tables (and the docs section)."""
    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("site policies", total=steps(args.quick))

        def advance(name: str) -> None:
            progress.update(task, description=f"policies {name}", advance=1)

        results = run_policies(
            args.quick, advance, callgrind_too=not args.no_callgrind, log=progress.console.print
        )
    results["machine"] = machine()
    results["workload"]["run_seconds"] = time.perf_counter() - started
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "policies.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print_policies(results)
    print(f"wrote {path}")
    if args.update_readme:
        update_policies(README, results)
        print(f"{README}'s site policies section rewritten")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "workload",
        nargs="?",
        choices=("all", "policies"),
        default="all",
        help="all (the default) or only the site policies' workload",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run (under a minute) to check the harness"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results", help="where latest.json/.png go")
    parser.add_argument(
        "--readme", action="store_true", help="only rewrite docs/performance.md's section from latest.json"
    )
    parser.add_argument(
        "--update-readme", action="store_true", help="after a run, rewrite docs/performance.md's section"
    )
    parser.add_argument(
        "--no-callgrind", action="store_true", help="skip the instruction counts of the full run"
    )
    args = parser.parse_args(argv)
    latest = args.output / "latest.json"
    if args.readme:
        if args.workload == "policies":
            update_policies(README, json.loads((args.output / "policies.json").read_text()))
        else:
            update_readme(README, json.loads(latest.read_text()))
        print(f"{README}'s {args.workload} section rewritten from {args.output}")
        return 0
    if args.workload == "policies":
        policies(args)
        return 0
    started = time.perf_counter()
    with Progress(transient=True) as progress:
        results = asyncio.run(run(args.quick, progress))
    if not args.quick and not args.no_callgrind:
        from .callgrind import measure_all

        # After the wall-clock runs, so that valgrind's load does not skew them.
        results["callgrind"] = measure_all(["single", "sequential", "sites", "entered"], ["http", "https"])
    results["workload"]["run_seconds"] = time.perf_counter() - started
    args.output.mkdir(parents=True, exist_ok=True)
    latest.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.output / "latest.png")
    sites_chart(results, args.output / "sites.png")
    print_tables(results)
    print(f"wrote {latest}, {args.output / 'latest.png'} and {args.output / 'sites.png'}")
    if args.update_readme:
        update_readme(README, results)
        print(f"{README}'s benchmarks section rewritten")
    policies(args)  # issue 11's workload, after the rest (its own callgrind last of all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
