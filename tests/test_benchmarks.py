"""The benchmark harness runs and writes its outputs (speed is read from its report, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import END, START, update_readme
from benchmarks.strategies import STRATEGIES

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
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
def test_quick_run_writes_json_chart_and_tables(quick_run):
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
    assert "end to end over HTTPS" in result.stdout and "targets" in result.stdout


@pytest.mark.slow  # runs `python -m benchmarks --quick`
def test_the_readme_section_is_regenerated_from_the_json(quick_run, tmp_path):
    _, output = quick_run
    results = json.loads((output / "latest.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n## Performance\n\n{START}\nold numbers\n{END}\n\n## After\n")
    update_readme(readme, results)
    text = readme.read_text()
    assert "old numbers" not in text and text.endswith("## After\n")
    assert "| `session_per_call` |" in text and "benchmarks/results/latest.png" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, results)


def test_the_committed_readme_has_the_markers():
    text = (ROOT / "README.md").read_text()
    assert START in text and END in text
