"""The package builds into an sdist and a wheel that twine accepts and that install into an empty venv."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import asynctools

ROOT = Path(__file__).parent.parent


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out)
    return out


def test_wheel_and_sdist_hold_the_package_with_py_typed_and_no_tests(dist):
    (wheel,) = dist.glob("aiohttp_asynctools-1.0.0-py3-none-any.whl")
    (sdist,) = dist.glob("aiohttp_asynctools-1.0.0.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
    with tarfile.open(sdist) as archive:
        sdist_names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for names in (wheel_names, sdist_names):
        assert "asynctools/py.typed" in names
        assert "asynctools/_registry.py" in names
        assert not [n for n in names if n.startswith(("tests/", "example/", "benchmarks/"))], names
    assert {"README.md", "CHANGES.md", "setup.cfg"} <= set(sdist_names)


def test_twine_accepts_both(dist):
    out = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert out.count("PASSED") == 2


def test_the_wheel_installs_into_an_empty_venv(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel)
    out = run(
        python,
        "-c",
        "import asynctools, sys; print(asynctools.__version__, asynctools.__file__)",
        cwd=tmp_path,
    )
    version, location = out.split()
    assert version == asynctools.__version__ == "1.0.0"
    assert str(tmp_path / "venv") in location  # the installed copy, not this checkout
