"""The package builds into an sdist and a wheel that twine accepts and that install into an empty venv."""

from __future__ import annotations

import configparser
import email
import email.message
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


@pytest.mark.slow  # builds (or installs) the package
def test_wheel_and_sdist_hold_the_package_with_py_typed_and_no_tests(dist: Path) -> None:
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
    assert {"README.md", "CHANGES.md", "LICENSE", "pyproject.toml", "setup.cfg"} <= set(sdist_names)
    assert "aiohttp_asynctools-1.0.0.dist-info/licenses/LICENSE" in wheel_names


def wheel_metadata(dist: Path) -> email.message.Message:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return email.message_from_bytes(archive.read("aiohttp_asynctools-1.0.0.dist-info/METADATA"))


def _release(version: str) -> tuple[int, ...]:
    """``"5.0.0"`` and ``"5.0"`` and ``"5"`` as one release: (5,)."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


@pytest.mark.slow  # builds (or installs) the package
def test_the_metadata_comes_from_pyproject(dist: Path) -> None:
    metadata = wheel_metadata(dist)
    assert metadata["Version"] == asynctools.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.10"
    assert "Christian Glacet" in metadata["Author"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "## Three lines to adopt" in metadata.get_payload()  # the README is the long description
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL", []))
    assert set(urls) == {"Homepage", "Source", "Documentation", "Changelog", "Issues"}
    assert all(url.startswith("https://") for url in urls.values()), urls
    assert urls["Changelog"].endswith("/CHANGES.md")
    requires = metadata.get_all("Requires-Dist", [])
    # Exactly the three runtime dependencies, each bounded below by the version .ci/run tests as lowest.
    lowest = dict(
        line.split("==") for line in (ROOT / ".ci" / "lowest.txt").read_text().split() if "==" in line
    )
    runtime = dict(r.split(">=") for r in requires if "extra ==" not in r)
    assert set(runtime) == {"aiohttp", "yarl"}, runtime
    # The extras' own libraries pinned there too (redis) are bounded by the same versions.
    bounds = dict(r.split(";")[0].replace(" ", "").split(">=") for r in requires if ">=" in r)
    assert set(runtime) <= set(lowest) <= set(bounds), (lowest, bounds)
    for name, pinned in lowest.items():
        assert _release(pinned) == _release(bounds[name]), (name, bounds[name], pinned)
    # The test extra names the other extras instead of repeating their lines; starlette is for tests only.
    (itself,) = [r for r in requires if r.startswith("aiohttp-asynctools[") and r.endswith('extra == "test"')]
    assert {"example", "bench", "docs"} <= set(itself.split("[", 1)[1].split("]", 1)[0].split(","))
    assert {"example", "bench", "docs", "test"} <= set(metadata.get_all("Provides-Extra", []))
    assert not [r for r in requires if r.startswith("starlette") and 'extra == "test"' not in r]
    assert len([r for r in requires if r.startswith("sphinx")]) == 1
    classifiers = metadata.get_all("Classifier", [])
    assert "Programming Language :: Python :: 3.10" in classifiers
    assert "Typing :: Typed" in classifiers


def test_setup_cfg_keeps_only_tool_settings() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert not [s for s in config.sections() if s == "metadata" or s.startswith("options")], config.sections()
    assert "slow:" in config["tool:pytest"]["markers"]
    assert (ROOT / "setup.py").read_text().split() == ["from", "setuptools", "import", "setup", "setup()"]


@pytest.mark.slow  # builds (or installs) the package
def test_twine_accepts_both(dist: Path) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert out.count("PASSED") == 2


@pytest.mark.slow  # builds (or installs) the package
def test_the_wheel_installs_into_an_empty_venv(dist: Path, tmp_path: Path) -> None:
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


@pytest.mark.slow  # builds the package, installs it and pytest into a venv
def test_the_installed_wheels_pytest_plugin_runs_the_docs_example_test(dist: Path, tmp_path: Path) -> None:
    # The testing page's first example, as a user pastes it: the plugin comes from the wheel's entry
    # point (nothing from this checkout), its fixture works and its leak check finds nothing.
    (wheel,) = dist.glob("*.whl")
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, "pytest", "pytest-aiohttp")
    page = (ROOT / "docs" / "testing.md").read_text()
    example = page.split("```{code-block} python\n", 1)[1].split("```", 1)[0]
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (project / "test_items.py").write_text(example)
    out = run(python, "-m", "pytest", "-p", "no:cacheprovider", "--asynctools-leak-check", cwd=project)
    assert "1 passed" in out, out
    assert "asynctools" in run(python, "-m", "pytest", "--version", "--version", cwd=project)
