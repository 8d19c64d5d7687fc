"""Scripts that never close the registry exit clean under `python -X dev -W error::ResourceWarning`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "exit_without_closing.py"
FORBIDDEN = (
    "Unclosed client session",
    "Unclosed connector",
    "Unclosed connection",
    "ResourceWarning",
    "Task was destroyed",
    "Exception ignored",
    "Traceback",
)


def run(mode: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", *options, str(SCRIPT), mode],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("mode", ["idle", "paused-generator", "in-flight"])
def test_exit_without_closing_anything_is_clean(mode):
    result = run(mode, "-W", "error::ResourceWarning")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) >= 2  # the script really left sessions for the registry to close
    assert "pools left: 0" in result.stdout
    for text in FORBIDDEN:
        assert text not in result.stderr, result.stderr


def test_main_raising_reports_only_its_own_error():
    result = run("raises", "-W", "error::ResourceWarning")
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("ValueError: boom")
    assert "pools left: 0" in result.stdout
    for text in FORBIDDEN[:-1]:
        assert text not in result.stderr, result.stderr


def test_an_acquisition_never_released_is_reported_with_where_it_was_made():
    result = run("attached")  # -X dev turns on asyncio's debug mode, and so the registry's
    assert result.returncode == 0, result.stderr
    assert (
        "ResourceWarning: asynctools: 1 acquisition(s) of the session for http://127.0.0.1:" in result.stderr
    )
    assert 'exit_without_closing.py", line' in result.stderr and "api.start_session()" in result.stderr
    assert "pools left: 0" in result.stdout
    for text in ("Unclosed client session", "Unclosed connector", "Task was destroyed", "Exception ignored"):
        assert text not in result.stderr, result.stderr
