"""Turning results into a table, a chart, the targets check and the README's Performance section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (
    ("requests_per_s", "req/s", "{:,.0f}"),
    ("ratio", "vs handheld", "{:.2f}x"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("connections", "TCP conns", "{:,.0f}"),
    ("sessions", "sessions", "{:,.0f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
)
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the benchmarks issue, each with the measured value and whether it is met."""
    micro = results["micro"]
    rows: list[tuple[str, float, str, bool]] = [
        ("attached call vs bare call", micro["attached_ratio"], "<= 6x", micro["attached_ratio"] <= 6),
        (
            "unattached call vs bare call",
            micro["unattached_ratio"],
            "<= 20x",
            micro["unattached_ratio"] <= 20,
        ),
        (
            "acquire at 10,000 keys vs 10 keys",
            micro["acquire_ratio_10000_vs_10"],
            "<= 1.5x",
            micro["acquire_ratio_10000_vs_10"] <= 1.5,
        ),
    ]
    for scheme, per_call in (("http", 2), ("https", 4)):
        table = results[scheme]
        limit = table["handheld"]["connections"]
        for name in ("containers", "unattached"):
            ratio = table[name]["ratio"]
            rows.append((f"{scheme} {name} vs handheld", ratio, ">= 0.95x", ratio >= 0.95))
            conns = table[name]["connections"]
            rows.append((f"{scheme} {name} connections", conns, f"== handheld ({limit:.0f})", conns == limit))
        speedup = table["unattached"]["requests_per_s"] / table["session_per_call"]["requests_per_s"]
        rows.append(
            (f"{scheme} unattached vs session_per_call", speedup, f">= {per_call}x", speedup >= per_call)
        )
    return [{"name": n, "value": v, "target": t, "met": m} for n, v, t, m in rows]


def print_tables(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    for scheme in ("http", "https"):
        table = Table(title=f"end to end over {scheme.upper()} ({describe_workload(results)})")
        table.add_column("strategy")
        for _, title, _ in COLUMNS:
            table.add_column(title, justify="right")
        for name, row in results[scheme].items():
            table.add_row(name, *(fmt.format(row[key]) for key, _, fmt in COLUMNS))
        console.print(table)
    micro = Table(title="in-process, ns per call")
    for title in ("bare call", "attached", "unattached", "acquire @10", "@1,000", "@10,000"):
        micro.add_column(title, justify="right")
    m = results["micro"]
    micro.add_row(
        f"{m['bare_ns']:,.0f}",
        f"{m['attached_ns']:,.0f} ({m['attached_ratio']:.1f}x)",
        f"{m['unattached_ns']:,.0f} ({m['unattached_ratio']:.1f}x)",
        *(f"{m['acquire_ns'][k]:,.0f}" for k in ("10", "1000", "10000")),
    )
    console.print(micro)
    checks = Table(title="targets")
    for title in ("target", "measured", "wanted", "met"):
        checks.add_column(title)
    for row in results["targets"]:
        checks.add_row(row["name"], f"{row['value']:.2f}", row["target"], "yes" if row["met"] else "NO")
    console.print(checks)


def describe_workload(results: dict[str, Any]) -> str:
    w = results["workload"]
    core = w.get("core_repetitions", w["repetitions"])
    extra = f" ({core} for handheld, containers and unattached)" if core != w["repetitions"] else ""
    return (
        f"{w['containers']} containers x {w['concurrency']} concurrent calls x {w['rounds']} rounds, "
        f"medians of {w['repetitions']} rotated repetitions{extra}"
    )


def chart(results: dict[str, Any], path: Path) -> None:
    """A PNG with requests/s and TCP connections per strategy, HTTP and HTTPS side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["http"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), constrained_layout=True)
    width = 0.38
    xs = range(len(names))
    for offset, scheme in ((-width / 2, "http"), (width / 2, "https")):
        top.bar(
            [x + offset for x in xs],
            [results[scheme][n]["requests_per_s"] for n in names],
            width,
            label=scheme,
        )
        bottom.bar(
            [x + offset for x in xs], [results[scheme][n]["connections"] for n in names], width, label=scheme
        )
    top.set_ylabel("requests / s (higher is better)")
    bottom.set_ylabel("TCP connections opened (log)")
    bottom.set_yscale("log")
    for axis in (top, bottom):
        axis.set_xticks(list(xs), names, rotation=15)
        axis.legend()
        axis.grid(axis="y", alpha=0.3)
    fig.suptitle(describe_workload(results), fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any]) -> str:
    """The README's Performance section body, from one run's results."""
    m, machine = results["micro"], results["machine"]
    lines = [
        START,
        f"Measured with `python -m benchmarks` on {machine['description']} (Python {machine['python']}, "
        f"aiohttp {machine['aiohttp']}, httpx {machine['httpx']}); {describe_workload(results)}, "
        "against a minimal keep-alive server in its own process.",
        "",
    ]
    for scheme in ("http", "https"):
        lines += [f"**{scheme.upper()}**", "", "| strategy | " + " | ".join(t for _, t, _ in COLUMNS) + " |"]
        lines.append("|---|" + "---:|" * len(COLUMNS))
        for name, row in results[scheme].items():
            lines.append(f"| `{name}` | " + " | ".join(fmt.format(row[k]) for k, _, fmt in COLUMNS) + " |")
        lines.append("")
    lines += [
        "| in-process | ns per call | vs a bare method call |",
        "|---|---:|---:|",
        f"| bare `await obj.method()` | {m['bare_ns']:,.0f} | 1x |",
        f"| decorated call, session attached | {m['attached_ns']:,.0f} | {m['attached_ratio']:.1f}x |",
        f"| decorated call, unattached (acquire + release, warm registry) | {m['unattached_ns']:,.0f} | "
        f"{m['unattached_ratio']:.1f}x |",
        "| `registry.acquire(url)` at 10 / 1,000 / 10,000 distinct keys | "
        + " / ".join(f"{m['acquire_ns'][k]:,.0f}" for k in ("10", "1000", "10000"))
        + f" | {m['acquire_ratio_10000_vs_10']:.2f}x from 10 to 10,000 keys |",
        "",
        "![requests/s and connections per strategy](benchmarks/results/latest.png)",
        END,
    ]
    return "\n".join(lines)


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    """Replace the text between the benchmark markers of *readme* with a fresh section."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} markers to replace")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: markdown(results), text, count=1))
