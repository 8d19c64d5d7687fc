"""The benchmark harness runs and writes its outputs (speed is read from its report, never asserted here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.callgrind import total_ir
from benchmarks.policies import most_in_window
from benchmarks.report import END, POLICIES_END, POLICIES_START, START, update_policies, update_readme
from benchmarks.shapes import ONE_SITE, SITES
from benchmarks.strategies import STRATEGIES

ROOT = Path(__file__).parent.parent
# A benchmark run: its process and its output directory.
Run = tuple[subprocess.CompletedProcess[str], Path]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    output = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, output


@pytest.mark.slow  # runs `python -m benchmarks --quick`
def test_quick_run_writes_json_chart_and_tables(quick_run: Run) -> None:
    result, output = quick_run
    assert result.returncode == 0, result.stderr
    results = json.loads((output / "latest.json").read_text())
    for scheme in ("http", "https"):
        assert list(results[scheme]) == list(STRATEGIES)
        for name, row in results[scheme].items():
            assert row["requests_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0, name
            assert row["connections"] >= 1 and row["sessions"] >= 1 and row["peak_rss_mb"] > 0, name
        assert results[scheme]["handheld"]["ratio"] == 1.0
        assert results[scheme]["session_per_call"]["sessions"] == 200  # one per call: 100 x 2 x 1
        assert results[scheme]["session_per_container"]["sessions"] == 100
        assert results[scheme]["containers"]["sessions"] == 1
    assert {row["name"] for row in results["targets"]} >= {
        "attached call vs bare call",
        "https unattached vs handheld",
    }
    assert (output / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (output / "sites.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "end to end over HTTPS" in result.stdout and "targets" in result.stdout
    assert "many sites over HTTPS" in result.stdout and "callgrind" not in results  # not in --quick
    assert json.loads((output / "policies.json").read_text())["workload"]["quick"]  # issue 11's, after


@pytest.mark.slow  # runs `python -m benchmarks --quick`
def test_quick_run_measures_issue_10_shapes(quick_run: Run) -> None:
    result, output = quick_run
    assert result.returncode == 0, result.stderr
    results = json.loads((output / "latest.json").read_text())
    micro = results["micro"]
    for key in ("bare_paused_ns", "unattached_held_paused_ns", "unattached_alone_paused_ns"):
        assert micro[key] > micro["bare_ns"] > 0, key  # a loop turn costs more than a bare call
    assert micro["unattached_alone_paused_ratio"] > 1
    for scheme in ("http", "https"):
        assert list(results["sites"][scheme]) == ["10", "100"]
        for n, table in results["sites"][scheme].items():
            assert list(table) == list(SITES)
            handheld = table["handheld"]
            assert handheld["ratio"] == handheld["ratio_min"] == 1.0
            # One session, and each origin's connection kept between rounds.
            assert handheld["sessions"] == 1 and handheld["connections"] == int(n)
            for name, row in table.items():
                assert row["requests_per_s"] > 0, name
                assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"], name
                assert row["connections"] >= int(n) and row["peak_rss_mb"] > 0 and row["peak_fds"] >= 0, name
            for name in ("containers", "unattached"):
                # At least one session per origin, at most one per origin and round.
                assert int(n) <= table[name]["sessions"] <= 3 * int(n), name
        for shape in ("sequential", "entered"):
            table = results["one_site"][shape][scheme]
            assert list(table) == list(ONE_SITE)
            assert table["handheld"]["sessions"] == 1
            assert all(row["connections"] >= 1 and row["requests_per_s"] > 0 for row in table.values())
        assert results["one_site"]["sequential"][scheme]["handheld"]["connections"] == 1
        assert results["one_site"]["sequential"][scheme]["containers"]["sessions"] == 1
    assert {row["name"] for row in results["targets"]} >= {
        "https 100 sites containers vs handheld",
        "http sequential unattached vs handheld",
        "https entered containers vs handheld",
    }


@pytest.mark.slow  # runs `python -m benchmarks --quick`
def test_the_readme_section_is_regenerated_from_the_json(quick_run: Run, tmp_path: Path) -> None:
    _, output = quick_run
    results = json.loads((output / "latest.json").read_text())
    readme = tmp_path / "performance.md"
    readme.write_text(f"# title\n\n## Performance\n\n{START}\nold numbers\n{END}\n\n## After\n")
    update_readme(readme, results)
    text = readme.read_text()
    assert "old numbers" not in text and text.endswith("## After\n")
    assert "| `session_per_call` |" in text and "](../benchmarks/results/latest.png)" in text
    assert "](../benchmarks/results/sites.png)" in text and "*many sites over HTTPS" in text
    assert "nobody else holding it" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, results)


def test_the_committed_performance_page_has_the_markers_and_its_charts() -> None:
    text = (ROOT / "docs" / "performance.md").read_text()
    assert START in text and END in text
    assert POLICIES_START in text and POLICIES_END in text
    for chart in ("latest.png", "sites.png"):
        if f"../benchmarks/results/{chart}" in text:
            assert (ROOT / "benchmarks" / "results" / chart).is_file(), chart


def test_callgrind_totals_are_read_from_the_output_file(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text("version: 1\nevents: Ir\nfn=(1) main\n0 5\nsummary: 123456\ntotals: 123456\n")
    assert total_ir(out) == 123456
    out.write_text("events: Ir\n")
    with pytest.raises(ValueError, match="totals"):
        total_ir(out)


@pytest.mark.slow  # three valgrind processes, about half a minute
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_counts_instructions_per_request(tmp_path: Path) -> None:
    latest = tmp_path / "latest.json"
    latest.write_text("{}")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.callgrind", "--cases", "sequential", "--schemes", "http"),
            *("--scale", "0.05", "--update", str(latest)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(latest.read_text())["callgrind"]["http"]["sequential"]
    assert set(counts) == {"handheld", "containers", "unattached"}
    assert counts["handheld"]["ratio"] == 1.0 and counts["handheld"]["requests"] == 10
    for row in counts.values():
        # A request over aiohttp is tens of thousands of instructions at least, and not billions.
        assert 10_000 < row["ir_per_request"] < 100_000_000 and row["sessions"] >= 1


@pytest.mark.slow  # runs `python -m benchmarks.opcodes`
def test_opcodes_are_counted_per_function(tmp_path: Path) -> None:
    out = tmp_path / "opcodes.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.opcodes",
            "--case",
            "sequential",
            "--scale",
            "0.05",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(out.read_text())
    assert set(counts["totals"]) == {"handheld", "containers", "unattached"}
    # A request through aiohttp runs thousands of bytecodes, not millions; ours add to them.
    assert 1_000 < counts["totals"]["handheld"] < 1_000_000
    assert counts["totals"]["unattached"] > counts["totals"]["handheld"]
    decorated = [f for f in counts["per_request"]["unattached"] if f.startswith("asynctools/_decorators.py:")]
    assert decorated and not any(f.startswith("asynctools/") for f in counts["per_request"]["handheld"])
    assert "unattached: the 25 functions that differ most from handheld" in result.stdout


@pytest.mark.slow  # runs `python -m benchmarks.ceiling --quick`
def test_the_ceilings_run_beside_asynctools(tmp_path: Path) -> None:
    out = tmp_path / "ceiling.json"
    command = [
        "-m",
        "benchmarks.ceiling",
        "--quick",
        "--repetitions",
        "1",
        "--origins",
        "10",
        "--json",
        str(out),
    ]
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Unclosed" not in result.stderr and "Error" not in result.stderr
    figures = json.loads(out.read_text())
    assert {case: list(rows) for case, rows in figures.items()} == {
        "sites": ["handheld", "per_site", "least", "containers"],
        "entered": ["handheld", "least", "containers"],
        "sequential": ["handheld", "least", "unattached"],
        "policies": ["none", "passthrough", "least", "asynctools"],
    }
    # The least designs do the same work: a session per site, made once, like asynctools's, over as
    # many connections (each origin is visited by one worker at a time: one connection each).
    sites = figures["sites"]
    assert sites["handheld"]["sessions"] == 1
    assert {name: row["sessions"] for name, row in sites.items() if name != "handheld"} == {
        "per_site": 10,
        "least": 10,
        "containers": 10,
    }
    assert {row["connections"] for row in sites.values()} == {10}
    assert {row["sessions"] for row in figures["entered"].values()} == {1}
    assert {row["sessions"] for row in figures["sequential"].values()} == {1}
    assert {row["sessions"] for row in figures["policies"].values()} == {1}
    for rows in figures.values():
        for row in rows.values():
            assert (
                1 < row["cpu_us_per_request"] < 100_000
                and row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
            )
    assert "policies: throughput against none" in result.stdout


# -- issue 11: site policies ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policies_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    output = tmp_path_factory.mktemp("policies")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "policies", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, output


@pytest.mark.slow  # runs `python -m benchmarks policies --quick`
def test_policies_quick_run_reports_sane_figures(policies_run: Run) -> None:
    result, output = policies_run
    assert result.returncode == 0, result.stderr
    assert not (output / "latest.json").exists()  # only the policies' workload ran
    results = json.loads((output / "policies.json").read_text())
    redis = shutil.which("redis-server") is not None
    assert results["redis"] is redis
    variants = ["handheld", "none", "passthrough", "local", *(["redis"] if redis else [])]
    w = results["workload"]
    for shape, requests in (("concurrent", w["workers"] * w["per_worker"]), ("sequential", w["sequential"])):
        table = results["overhead"][shape]
        assert list(table) == variants
        assert table["none"]["vs_none"] == {"median": 1.0, "min": 1.0, "max": 1.0}
        for name, row in table.items():
            assert len(row["samples_requests_per_s"]) == w["repetitions"] == 2, name
            low, high = row["spread_requests_per_s"]["min"], row["spread_requests_per_s"]["max"]
            assert 0 < low <= row["requests_per_s"] <= high, name
            assert row["us_per_request"] == pytest.approx(1e6 / row["requests_per_s"]), name
            assert row["vs_none"]["min"] <= row["vs_none"]["median"] <= row["vs_none"]["max"], name
            assert row["sessions"] == 1 and row["seconds"] * high >= requests * 0.999_999, name
    summary = results["overhead"]["summary"]
    assert summary["local_vs_none"] == results["overhead"]["concurrent"]["local"]["vs_none"]
    assert summary["passthrough_vs_none"] == results["overhead"]["concurrent"]["passthrough"]["vs_none"]
    for kind, a in results["accuracy"].items():
        assert a["requests"] == w["processes"] * w["each"] == 40, kind
        # 40 requests under 20 a second: some must have waited, and it took some time.
        assert a["rate_waits"] > 0 and a["seconds"] > 0 and a["redis_errors"] == 0, kind
        assert 1 <= a["max_in_any_window"] <= a["requests"] and a["achieved_per_s"] > 0, kind
    assert set(results["accuracy"]) == {"local", *(["redis"] if redis else [])}
    if redis:
        assert results["accuracy"]["redis"]["processes"] == 2
        assert summary["redis_added_us_sequential"] == pytest.approx(
            results["overhead"]["sequential"]["redis"]["us_per_request"]
            - results["overhead"]["sequential"]["local"]["us_per_request"]
        )
    else:
        assert "redis-server is not installed" in results["redis_skipped"]
    assert "callgrind" not in results  # not in --quick
    assert "site policy targets" in result.stdout and "rate limit accuracy" in result.stdout


@pytest.mark.slow  # runs `python -m benchmarks policies --quick`
def test_the_policies_section_is_regenerated_from_the_json(policies_run: Run, tmp_path: Path) -> None:
    _, output = policies_run
    results = json.loads((output / "policies.json").read_text())
    page = tmp_path / "performance.md"
    page.write_text(f"# title\n\n{START}\nkept\n{END}\n\n{POLICIES_START}\nold numbers\n{POLICIES_END}\n")
    update_policies(page, results)
    text = page.read_text()
    assert "old numbers" not in text and "\nkept\n" in text and text.endswith(f"{POLICIES_END}\n")
    assert "`python -m benchmarks policies`" in text and "| container, no policy |" in text
    assert "aiohttp's middleware support alone" in text and "a pass-through middleware" in text
    assert "*rate limit accuracy, timed at the server (per = 1 s)*" in text
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_policies(page, results)


def test_most_arrivals_in_any_window() -> None:
    assert most_in_window([], 1.0) == 0
    assert most_in_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3  # [0, 1) holds 3; 1.0 starts a new one
    assert most_in_window([3.0, 0.0, 2.1, 2.0, 2.5], 1.0) == 3  # unsorted: 2.0, 2.1, 2.5
    assert most_in_window([0.0, 0.0, 0.0], 0.5) == 3
