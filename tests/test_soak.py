"""The soak in its shortened form (the full run is `python tests/soak.py`, about 60 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).parent / "soak.py"


@pytest.mark.slow  # an 8 s run of tests/soak.py
def test_short_soak_leaves_nothing_behind() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "dev", str(SOAK), "--seconds", "8", "--calls", "10"],
        capture_output=True,
        text=True,
        check=False,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, figures
    assert all(figures["checks"].values()), figures
    assert figures["calls"] >= 500 and figures["ok"] > 0 and figures["error"] > 0 and figures["cancelled"] > 0
    for text in ("Unclosed", "ResourceWarning", "Task was destroyed", "Exception ignored", "Traceback"):
        assert text not in result.stderr, result.stderr
