"""The pytest plugin under each pytest-asyncio a user may have pinned, installed side by side.

Releases before 1.1 keep their loops where the plugin cannot reach them through public fixtures: there
the plugin must stay out of the way (a user's suite passes as without it, with a line in pytest's
header saying why it is off) and refuse a leak check that was asked for, rather than pass it silently.
From 1.1 on, the leak check works. Each version gets a venv of its own (pip, from the package index),
with this checkout's asynctools on ``PYTHONPATH`` and the plugin loaded with ``-p``.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import venv
from pathlib import Path

import aiohttp
import pytest
import yarl

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # creates a venv per version and installs into it

UNSUPPORTED = ("0.21.2", "0.23.8", "1.0.0")
SUPPORTED = ("1.1.0",)

USERS_SUITE = """
import aiohttp
import asynctools
from aiohttp import web


async def hello(request):
    return web.Response(text="ok")


async def test_a_users_async_test():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        async with asynctools.default_registry.session(url) as session:
            async with session.get(url) as response:
                assert await response.text() == "ok"
    finally:
        await runner.cleanup()
        await asynctools.default_registry.close()


def test_a_users_sync_test():
    assert asynctools.SessionRegistry() is not None
"""

LEAKY = """
import pytest
import asynctools


@pytest.mark.asynctools_leak_check
async def test_leaky():
    await asynctools.default_registry.acquire("http://127.0.0.1:9")
"""

INI = "[pytest]\nasyncio_mode = auto\nfilterwarnings =\n    error\n"


@pytest.fixture(scope="module", params=UNSUPPORTED + SUPPORTED)
def pytest_asyncio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """(version, python) of a venv holding that pytest-asyncio, the pytest it supports, this aiohttp."""
    version: str = request.param
    where = tmp_path_factory.mktemp(f"pytest-asyncio-{version}")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "pytest >= 8, < 9",
            f"pytest-asyncio == {version}",
            f"aiohttp == {aiohttp.__version__}",
            f"yarl == {yarl.__version__}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return version, python


# An editable install leaves its metadata (with the pytest11 entry point) in the checkout: on
# PYTHONPATH, pytest then loads the plugin by itself, and a second ``-p`` for it is an error.
ENTRY_POINT_IN_ROOT = any(
    entry.group == "pytest11" and entry.name == "asynctools"
    for dist in importlib.metadata.distributions(path=[str(ROOT)])
    for entry in dist.entry_points
)


def run(python: Path, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load = () if ENTRY_POINT_IN_ROOT else ("-p", "asynctools.pytest_plugin")
    return subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", *load, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def suite(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "pytest.ini").write_text(INI)
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def test_a_users_suite_passes_with_the_plugin_loaded(
    pytest_asyncio: tuple[str, Path], tmp_path: Path
) -> None:
    version, python = pytest_asyncio
    result = run(python, suite(tmp_path, test_users=USERS_SUITE), "-rA")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "error" not in result.stdout.lower(), result.stdout
    header = f"asynctools: pytest-asyncio {version} is older than 1.1"
    assert (header in result.stdout) is (version in UNSUPPORTED), result.stdout


def test_a_leak_check_asked_for_never_passes_silently(
    pytest_asyncio: tuple[str, Path], tmp_path: Path
) -> None:
    version, python = pytest_asyncio
    directory = suite(tmp_path, test_leaky=LEAKY)
    marked = run(python, directory)
    assert marked.returncode == 1, marked.stdout + marked.stderr
    if version in UNSUPPORTED:
        assert (
            f"test_leaky asks for the leak check, but asynctools: pytest-asyncio {version}" in marked.stdout
        )
        everywhere = run(python, directory, "--asynctools-leak-check")
        assert everywhere.returncode == pytest.ExitCode.USAGE_ERROR, everywhere.stdout + everywhere.stderr
        assert "the leak check was asked for" in everywhere.stderr
    else:
        assert "asynctools leak check: test_leaky.py::test_leaky left behind" in marked.stdout, marked.stdout
        assert "acquired 1 time(s) more than released" in marked.stdout, marked.stdout


def test_the_versions_here_are_the_ones_the_plugin_draws_the_line_at() -> None:
    # The plugin's threshold and this file's split agree: the newest unsupported is just below it.
    from asynctools.pytest_plugin import _OLDEST_PYTEST_ASYNCIO, _release

    assert all(_release(v) < _OLDEST_PYTEST_ASYNCIO for v in UNSUPPORTED)
    assert all(_release(v) >= _OLDEST_PYTEST_ASYNCIO for v in SUPPORTED)
    assert _release("1.0.0a1") == (1, 0, 0) and _release("0.23.8") == (0, 23, 8)
    assert _release("1.2.dev3") == (1, 2)
    assert sys.version_info >= (3, 10)
