"""Scripts that never close the registry exit clean under `python -X dev`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
FORBIDDEN = (
    "Unclosed client session",
    "Unclosed connector",
    "ResourceWarning",
    "Task was destroyed",
    "Exception ignored",
    "Traceback",
)


@pytest.mark.parametrize("mode", ["idle", "paused-generator", "attached"])
def test_exit_without_closing_anything_is_clean(mode):
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error::ResourceWarning",
            str(SCRIPTS / "exit_without_closing.py"),
            mode,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    opened = int(result.stdout.split()[0])
    assert opened >= 2  # the script really left sessions for the registry to close
    assert "pools left: 0" in result.stdout
    for text in FORBIDDEN:
        assert text not in result.stderr, result.stderr
