"""``python -m benchmarks``: prove the pooling pays, side by side with the alternatives, over HTTP and HTTPS.

python -m benchmarks                 # full run, a few minutes; writes benchmarks/results/
python -m benchmarks --quick         # under a minute: proves the harness works
python -m benchmarks --readme        # rewrite README.md's Performance section from latest.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from rich.progress import Progress

from .endtoend import CORE, compare, make_tls, upstream
from .micro import run_micro
from .report import chart, print_tables, targets, update_readme
from .strategies import STRATEGIES, Workload

HERE = Path(__file__).parent
README = HERE.parent / "README.md"


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    return {
        "description": f"{os.cpu_count()} cores ({cpu}), {platform.system()}",
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
    repetitions, core_repetitions = (1, 1) if quick else (5, 20)
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
        for scheme, tls in (("http", None), ("https", make_tls(tmp))):
            with upstream(tls) as server:
                w = Workload(server.base, ssl=server.ssl, **shape)

                def advance(name: str, scheme: str = scheme) -> None:
                    progress.update(task, description=f"{scheme} {name}", advance=1)

                results[scheme] = await compare(w, server, repetitions, core_repetitions, advance)
    results["targets"] = targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run (under a minute) to check the harness"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results", help="where latest.json/.png go")
    parser.add_argument("--readme", action="store_true", help="only rewrite README.md's Performance section")
    parser.add_argument(
        "--update-readme", action="store_true", help="after a run, rewrite the README section"
    )
    args = parser.parse_args(argv)
    latest = args.output / "latest.json"
    if args.readme:
        update_readme(README, json.loads(latest.read_text()))
        print(f"README.md's Performance section rewritten from {latest}")
        return 0
    with Progress(transient=True) as progress:
        results = asyncio.run(run(args.quick, progress))
    args.output.mkdir(parents=True, exist_ok=True)
    latest.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.output / "latest.png")
    print_tables(results)
    print(f"wrote {latest} and {args.output / 'latest.png'}")
    if args.update_readme:
        update_readme(README, results)
        print("README.md's Performance section rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
