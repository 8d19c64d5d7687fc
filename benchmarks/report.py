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
    if "unattached_alone_paused_ratio" in micro:
        added = micro["unattached_alone_paused_added_ns"] / max(micro["unattached_held_paused_added_ns"], 1.0)
        rows.append(
            (
                "unattached call, nobody else holding, loop turn between calls: added ns vs held elsewhere",
                added,
                "<= 1.5x",
                added <= 1.5,
            )
        )
    for scheme, per_n in results.get("sites", {}).items():
        for n, table in per_n.items():
            for name in ("containers", "unattached"):
                ratio = table[name]["ratio"]
                rows.append((f"{scheme} {n} sites {name} vs handheld", ratio, ">= 0.95x", ratio >= 0.95))
                conns, limit = table[name]["connections"], table["handheld"]["connections"]
                rows.append(
                    (
                        f"{scheme} {n} sites {name} connections",
                        conns,
                        f"== handheld ({limit:.0f})",
                        conns <= limit,
                    )
                )
    for shape, per_scheme in results.get("one_site", {}).items():
        for scheme, table in per_scheme.items():
            for name in ("containers", "unattached"):
                ratio = table[name]["ratio"]
                rows.append((f"{scheme} {shape} {name} vs handheld", ratio, ">= 0.95x", ratio >= 0.95))
    return [{"name": n, "value": v, "target": t, "met": m} for n, v, t, m in rows]


def print_tables(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=160)
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
    if "unattached_alone_paused_ns" in m:
        paused = Table(title="in-process, await asyncio.sleep(0) after every call (both sides), ns per call")
        for title in ("bare + sleep(0)", "unattached, held elsewhere", "unattached, nobody else holding"):
            paused.add_column(title, justify="right")
        paused.add_row(
            f"{m['bare_paused_ns']:,.0f}",
            f"{m['unattached_held_paused_ns']:,.0f} (+{m['unattached_held_paused_added_ns']:,.0f})",
            f"{m['unattached_alone_paused_ns']:,.0f} (+{m['unattached_alone_paused_added_ns']:,.0f})",
        )
        console.print(paused)
    for title, rows in shape_tables(results):
        table = Table(title=title)
        for column in SHAPE_COLUMNS:
            table.add_column(column, justify="left" if column in ("N", "strategy") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for title, rows in callgrind_tables(results):
        table = Table(title=title)
        for column in CALLGRIND_COLUMNS:
            table.add_column(column, justify="left" if column == "case" else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
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


SHAPE_COLUMNS = (
    "N",
    "strategy",
    "req/s",
    "vs handheld (min-max)",
    "TCP conns",
    "sessions",
    "peak fds",
    "peak RSS MB",
    "RSS growth MB",
)


def shape_row(label: str, name: str, row: dict[str, Any]) -> list[str]:
    spread = f" ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})" if row["repetitions"] > 1 else " (1 run)"
    return [
        label,
        name,
        f"{row['requests_per_s']:,.0f}",
        f"{row['ratio']:.2f}x{spread}",
        f"{row['connections']:,.0f}",
        f"{row['sessions']:,.0f}",
        f"{row['peak_fds']:,.0f}",
        f"{row['peak_rss_mb']:,.0f}",
        f"{row['rss_growth_mb']:,.1f}",
    ]


def shape_tables(results: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    """Issue 10's shapes as (title, rows): many sites per scheme, then the one-site shapes."""
    tables = []
    shapes = results["workload"].get("shapes", {})
    for scheme, per_n in results.get("sites", {}).items():
        rows = [
            shape_row(f"{int(n):,}", name, row) for n, table in per_n.items() for name, row in table.items()
        ]
        title = (
            f"many sites over {scheme.upper()}: N origins x {shapes.get('per_visit')} requests per visit x "
            f"{shapes.get('rounds')} rounds, {shapes.get('concurrency')} workers; medians of "
            + ", ".join(f"{reps} (N={int(n):,})" for n, reps in shapes.get("origins", {}).items())
            + " rotated repetitions"
        )
        tables.append((title, rows))
    labels = {
        "sequential": f"{shapes.get('sequential', 0):,} calls, sleep(0) between",
        "entered": f"{shapes.get('entered', 0):,} containers entered",
    }
    rows = [
        shape_row(f"{labels[shape]} ({scheme.upper()})", name, row)
        for shape, per_scheme in results.get("one_site", {}).items()
        for scheme, table in per_scheme.items()
        for name, row in table.items()
    ]
    if rows:
        reps = shapes.get("one_site_repetitions")
        tables.append(
            (f"one site: sequential calls and many containers (medians of {reps} repetitions)", rows)
        )
    return tables


CALLGRIND_COLUMNS = (
    "case",
    "scheme",
    "handheld Ir/req",
    "containers Ir/req",
    "unattached Ir/req",
    "sessions h/c/u",
)


def callgrind_tables(results: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    cg = results.get("callgrind")
    if not cg:
        return []
    rows = []
    for case in cg["cases"]:
        for scheme in ("http", "https"):
            if scheme not in cg:
                continue
            r = cg[scheme][case]
            rows.append(
                [
                    case,
                    scheme,
                    f"{r['handheld']['ir_per_request']:,.0f}",
                    f"{r['containers']['ir_per_request']:,.0f} ({r['containers']['ratio']:.2f}x)",
                    f"{r['unattached']['ir_per_request']:,.0f} ({r['unattached']['ratio']:.2f}x)",
                    "/".join(f"{r[n]['sessions']:.0f}" for n in ("handheld", "containers", "unattached")),
                ]
            )
    return [("instructions per request (valgrind --tool=callgrind), ratio to handheld", rows)]


def sites_chart(results: dict[str, Any], path: Path) -> None:
    """Ratio to handheld against N (log x), and connections per request, HTTP and HTTPS side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = results.get("sites", {})
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True, sharex=True)
    for column, scheme in enumerate(("http", "https")):
        per_n = sites.get(scheme, {})
        top, bottom = axes[0][column], axes[1][column]
        names = list(next(iter(per_n.values()), {}))
        for name in names:
            ns = [int(n) for n, table in per_n.items() if name in table]
            rows = [per_n[str(n)][name] for n in ns]
            lower = [r["ratio"] - r["ratio_min"] for r in rows]
            upper = [r["ratio_max"] - r["ratio"] for r in rows]
            top.errorbar(
                ns, [r["ratio"] for r in rows], yerr=[lower, upper], marker="o", capsize=3, label=name
            )
            shape = results["workload"]["shapes"]
            per_n_requests = shape["per_visit"] * shape["rounds"]
            bottom.plot(
                ns,
                [r["connections"] / (n * per_n_requests) for r, n in zip(rows, ns, strict=True)],
                marker="o",
                label=name,
            )
        top.axhline(0.95, color="grey", linestyle=":", linewidth=1)
        top.set_title(f"many sites over {scheme.upper()}")
        top.set_ylabel("requests/s relative to handheld")
        bottom.set_ylabel("TCP connections per request")
        bottom.set_xlabel("origins (N)")
        for axis in (top, bottom):
            axis.set_xscale("log")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    fig.suptitle(
        "issue 10: cost per request against the number of sites (medians, bars: min-max)", fontsize=10
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    """docs/performance.md's benchmarks section, from one run's results."""
    m, machine = results["micro"], results["machine"]
    lines = [
        START,
        f"Measured with `python -m benchmarks` on {machine['description']} (Python {machine['python']}, "
        f"aiohttp {machine['aiohttp']}, httpx {machine['httpx']}, asynctools at "
        f"{machine.get('asynctools_commit', 'the working tree')}); {describe_workload(results)}, "
        "against a minimal keep-alive server in its own process. Peak RSS is the client process's "
        "high-water mark, reached in whichever shape ran first with the most TLS connections: read the "
        "growth columns below for what one strategy adds.",
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
    ]
    if "unattached_alone_paused_ns" in m:
        lines += [
            f"| bare call + `await asyncio.sleep(0)` | {m['bare_paused_ns']:,.0f} | 1x |",
            "| decorated call, unattached, session held elsewhere, + `sleep(0)` | "
            f"{m['unattached_held_paused_ns']:,.0f} | {m['unattached_held_paused_ratio']:.1f}x "
            f"(+{m['unattached_held_paused_added_ns']:,.0f} ns) |",
            "| decorated call, unattached, nobody else holding it, + `sleep(0)` | "
            f"{m['unattached_alone_paused_ns']:,.0f} | {m['unattached_alone_paused_ratio']:.1f}x "
            f"(+{m['unattached_alone_paused_added_ns']:,.0f} ns) |",
            "",
            "With a loop turn after every call the ratio is (call + `sleep(0)`) / (bare call + `sleep(0)`); "
            "the added ns is the difference.",
        ]
    lines += ["", "![requests/s and connections per strategy](../benchmarks/results/latest.png)", ""]
    if "sites" in results:
        w = results["workload"]
        lines += [
            "**Issue 10's shapes** (`benchmarks/shapes.py`): *many sites*, N origins (N ports of 127.0.0.1, "
            "one certificate for all), each visited once per round by one of 10 workers, "
            f"{w['shapes']['per_visit']} requests per visit, {w['shapes']['rounds']} rounds; `containers` is "
            "one container per origin entered with `async with` for each visit, `unattached` one never "
            "entered; `sequential`: one site, calls in a row with `await asyncio.sleep(0)` between them "
            "(containers entered once); `entered`: one new container per call, entered with `async with`, "
            "10 workers. Registries at their defaults. Ratios are medians of the per-repetition ratios to "
            "`handheld`, min-max in brackets; fds are the client's open fds at peak above its baseline "
            "(sampled every 50 ms, so short runs may show less); RSS growth is the peak above the RSS "
            "before the run.",
            "",
        ]
        for title, rows in shape_tables(results):
            lines += [f"*{title}*", "", "| " + " | ".join(SHAPE_COLUMNS) + " |"]
            lines.append("|---|---|" + "---:|" * (len(SHAPE_COLUMNS) - 2))
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        lines += ["![ratio to handheld against the number of sites](../benchmarks/results/sites.png)", ""]
    for title, rows in callgrind_tables(results):
        cg = results["callgrind"]
        lines += [
            f"*{title}*: one valgrind process per strategy, counting only the measured run "
            "(after a warm-up run of the same shape; interpreter start-up and imports excluded), sessions, "
            "connections and TLS handshakes included. Cases: "
            + "; ".join(f"`{case}`: {text}" for case, text in cg["cases"].items())
            + ".",
            "",
            "| " + " | ".join(CALLGRIND_COLUMNS) + " |",
            "|---|---|" + "---:|" * (len(CALLGRIND_COLUMNS) - 2),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if "run_seconds" in results["workload"]:
        lines += [f"The whole run took {results['workload']['run_seconds'] / 60:.0f} minutes.", ""]
    lines.append(END)
    return "\n".join(lines)


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    """Replace the text between the benchmark markers of *readme* with a fresh section."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} markers to replace")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: markdown(results), text, count=1))


# -- issue 11: site policies (benchmarks/policies.py) ------------------------------------------------

POLICIES_START, POLICIES_END = "<!-- policies:start -->", "<!-- policies:end -->"
POLICY_LABELS = {
    "handheld": "one `ClientSession` by hand",
    "none": "container, no policy",
    "passthrough": "no policy, a pass-through middleware (aiohttp's own cost)",
    "local": "`Retry()` + in-process `RateLimit`, never waiting",
    "redis": "`Retry()` + `RateLimit(redis=...)`, never waiting",
}


def policies_tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) of the site policies' workload: speed, accuracy, instruction counts."""
    w = results["workload"]
    tables = []
    for shape, what in (
        ("concurrent", f"{w['workers']} workers x {w['per_worker']} calls"),
        ("sequential", f"{w['sequential']} calls one at a time"),
    ):
        rows = [
            [
                POLICY_LABELS[name],
                f"{row['requests_per_s']:,.0f} ({row['spread_requests_per_s']['min']:,.0f}-"
                f"{row['spread_requests_per_s']['max']:,.0f})",
                f"{row['us_per_request']:,.0f}",
                f"{row['vs_none']['median']:.3f}x ({row['vs_none']['min']:.3f}-{row['vs_none']['max']:.3f})",
            ]
            for name, row in results["overhead"][shape].items()
        ]
        tables.append(
            (
                f"site policies, {what}: medians (min-max) of {w['repetitions']} alternated repetitions",
                ["variant", "req/s", "µs per request", "vs no policy"],
                rows,
            )
        )
    rows = []
    for kind, a in results["accuracy"].items():
        rows.append(
            [
                f"{kind} ({a['processes']} process{'es' if a['processes'] > 1 else ''})",
                f"{a['limit_per_s']:,}",
                f"{a['requests']:,}",
                f"{a['achieved_per_s']:,.1f} ({a['achieved_vs_limit']:.1%})",
                f"{a['max_in_any_window']:,}",
                f"{a['rate_waits']:,}",
            ]
        )
    tables.append(
        (
            "rate limit accuracy, timed at the server (per = 1 s)",
            ["limiter", "limit /s", "requests", "achieved /s", "max in any 1 s", "waits"],
            rows,
        )
    )
    cg = results.get("callgrind")
    if cg:
        rows = [
            [POLICY_LABELS[name], f"{row['ir_per_request']:,.0f}", f"{row['vs_none']:.3f}x"]
            for name, row in cg["variants"].items()
        ]
        tables.append(
            (
                "client instructions per request (valgrind --tool=callgrind)",
                ["variant", "Ir/request", "vs no policy"],
                rows,
            )
        )
    return tables


def policies_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's speed target, and the limits holding at the server."""
    ratio = results["overhead"]["summary"]["local_vs_none"]["median"]
    rows = [("Retry + in-process RateLimit, not triggered, vs no policy", ratio, ">= 0.95x", ratio >= 0.95)]
    for kind, a in results["accuracy"].items():
        rows.append(
            (
                f"{kind} limit: most arrivals in any window",
                a["max_in_any_window"],
                f"<= {a['limit_per_s']}",
                a["max_in_any_window"] <= a["limit_per_s"],
            )
        )
    return [{"name": n, "value": v, "target": t, "met": m} for n, v, t, m in rows]


def print_policies(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=160)
    for title, columns, rows in policies_tables(results):
        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="left" if column in ("variant", "limiter") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    summary = results["overhead"]["summary"]
    if "redis_added_us_sequential" in summary:
        console.print(
            f"Redis limiter: {summary['redis_added_us_sequential']:,.0f} µs added per sequential request "
            f"vs in-process; concurrent throughput {summary['redis_vs_local']['median']:.2f}x in-process"
        )
    if "redis_skipped" in results:
        console.print(f"Redis limiter not measured: {results['redis_skipped']}")
    checks = Table(title="site policy targets")
    for title in ("target", "measured", "wanted", "met"):
        checks.add_column(title)
    for check in policies_targets(results):
        checks.add_row(
            check["name"], f"{check['value']:.3f}", check["target"], "yes" if check["met"] else "NO"
        )
    console.print(checks)


def policies_markdown(results: dict[str, Any]) -> str:
    """docs/performance.md's site policies section, from one ``python -m benchmarks policies`` run."""
    machine, w = results["machine"], results["workload"]
    summary = results["overhead"]["summary"]
    local = summary["local_vs_none"]
    lines = [
        POLICIES_START,
        f"Measured with `python -m benchmarks policies` on {machine['description']} (Python "
        f"{machine['python']}, aiohttp {machine['aiohttp']}, asynctools at "
        f"{machine.get('asynctools_commit', 'the working tree')}), the variants alternating in each of "
        f"{w['repetitions']} repetitions; medians, min-max in brackets. `Retry()` and an in-process "
        f"`RateLimit({w['never_limit_per_s']:_}, per=1)` configured but never triggered make "
        f"**{local['median']:.3f}x** the requests per second of no policy ({local['min']:.3f}-"
        f"{local['max']:.3f}; target >= 0.95x: {'met' if local['median'] >= 0.95 else 'not met'}).",
    ]
    if "passthrough_vs_none" in summary:
        floor = summary["passthrough_vs_none"]
        lines[-1] += (
            f" Of that, aiohttp's middleware support alone (a middleware that only calls the next "
            f"handler) makes {floor['median']:.3f}x ({floor['min']:.3f}-{floor['max']:.3f})."
        )
    lines.append("")
    for title, columns, rows in policies_tables(results):
        lines += [f"*{title}*", "", "| " + " | ".join(columns) + " |"]
        lines.append("|---|" + "---:|" * (len(columns) - 1))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if "redis_added_us_sequential" in summary:
        lines += [
            f"The Redis limiter (one atomic script per request on a local redis-server) adds "
            f"{summary['redis_added_us_sequential']:,.0f} µs to each request made one at a time and "
            f"runs at {summary['redis_vs_local']['median']:.2f}x the in-process limiter's throughput "
            f"with {w['workers']} workers ({summary['redis_vs_local']['min']:.2f}-"
            f"{summary['redis_vs_local']['max']:.2f}).",
            "",
        ]
    if "callgrind" in results:
        lines += [f"Instruction counts: {results['callgrind']['method']}.", ""]
    lines.append(POLICIES_END)
    return "\n".join(lines)


def update_policies(page: Path, results: dict[str, Any]) -> None:
    """Replace the text between the site policies markers of *page* with a fresh section."""
    text = page.read_text()
    if POLICIES_START not in text or POLICIES_END not in text:
        raise ValueError(f"{page} has no {POLICIES_START} ... {POLICIES_END} markers to replace")
    pattern = re.compile(re.escape(POLICIES_START) + ".*?" + re.escape(POLICIES_END), re.S)
    page.write_text(pattern.sub(lambda _: policies_markdown(results), text, count=1))
