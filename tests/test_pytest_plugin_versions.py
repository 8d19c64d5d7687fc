"""The pytest plugin under each pytest-asyncio a user may have pinned, installed side by side.

Releases before 1.1 keep their loops where the plugin cannot reach them through public fixtures: there
the plugin must stay out of the way (a user's suite passes as without it, with a line in pytest's
header saying why it is off) and refuse a leak check that was asked for, rather than pass it silently.
From 1.1 on, the leak check works, and so does the check of what a module's fixtures hold at its end.
Each version gets a venv of its own (pip, from the package index) with the pytest-aiohttp of its time
(the current one with the newest), with this checkout's asynctools on ``PYTHONPATH`` and the plugin
loaded with ``-p``.
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

from asynctools.pytest_plugin import _release

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # creates a venv per version and installs into it

#: pytest-asyncio -> (pytest-aiohttp, pytest) of its time; the newest with the current ones.
MATRIX = {
    "0.21.2": ("1.0.5", "pytest >= 8, < 9"),
    "0.23.8": ("1.0.5", "pytest >= 8, < 9"),
    "0.24.0": ("1.0.5", "pytest >= 8, < 9"),
    "1.0.0": ("1.1.0", "pytest >= 8, < 9"),
    "1.1.0": ("1.1.0", "pytest >= 8, < 9"),
    "1.5.0": ("1.1.1", "pytest >= 9"),
}
UNSUPPORTED = ("0.21.2", "0.23.8", "0.24.0", "1.0.0")
SUPPORTED = ("1.1.0", "1.5.0")

USERS_SUITE = """
import aiohttp
import asynctools
from aiohttp import web


async def hello(request):
    return web.Response(text="ok")


def make_app():
    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def test_a_users_async_test():
    runner = web.AppRunner(make_app())
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


async def test_pytest_aiohttps_client(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/")
    assert await response.text() == "ok"


async def test_a_container_against_pytest_aiohttps_server(aiohttp_server):
    server = await aiohttp_server(make_app())
    url = str(server.make_url("/"))
    async with asynctools.default_registry.session(url) as session:
        async with session.get(url) as response:
            assert await response.text() == "ok"
    await asynctools.default_registry.close()  # as a suite without the plugin's cleanup must


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
#: From 0.24 pytest-asyncio warns (an error here) while this is unset; before, it warns of it as unknown.
FIXTURE_LOOP_SCOPE = "asyncio_default_fixture_loop_scope = function\n"


MODULE_FIXTURES = """
import pytest
import pytest_asyncio
import asynctools

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Api(asynctools.AbstractSessionContainer):
    pass


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api():
    api = Api("http://127.0.0.1:9")
    await api.start_session()
    yield api
    {release}


async def test_first(api):
    assert api.session is not None


async def test_second(api):
    assert api.session is not None and not api.session.closed
"""


@pytest.fixture(scope="module", params=UNSUPPORTED + SUPPORTED)
def pytest_asyncio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """(version, python) of a venv with that pytest-asyncio, the pytest and pytest-aiohttp of its time."""
    version: str = request.param
    pytest_aiohttp, pytest_requirement = MATRIX[version]
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
            pytest_requirement,
            f"pytest-asyncio == {version}",
            f"pytest-aiohttp == {pytest_aiohttp}",
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


def suite(tmp_path: Path, version: str, **files: str) -> Path:
    """*files* in *tmp_path*, with a pytest.ini as a user of pytest-asyncio *version* would write it."""
    knows_the_option = _release(version) >= (0, 24)
    (tmp_path / "pytest.ini").write_text(INI + (FIXTURE_LOOP_SCOPE if knows_the_option else ""))
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def test_a_users_suite_passes_with_the_plugin_loaded(
    pytest_asyncio: tuple[str, Path], tmp_path: Path
) -> None:
    # pytest-aiohttp's fixtures among them; with the leak check too, where it can run.
    version, python = pytest_asyncio
    directory = suite(tmp_path, version, test_users=USERS_SUITE)
    for check in ((), ("--asynctools-leak-check",)) if version in SUPPORTED else ((),):
        result = run(python, directory, "-rA", *check)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 passed" in result.stdout and "error" not in result.stdout.lower(), result.stdout
        assert "PASSED test_users.py::test_pytest_aiohttps_client" in result.stdout, result.stdout
        header = f"asynctools: pytest-asyncio {version} is older than 1.1"
        assert (header in result.stdout) is (version in UNSUPPORTED), result.stdout


def test_a_module_fixtures_session_is_its_own(pytest_asyncio: tuple[str, Path], tmp_path: Path) -> None:
    # Held across the module's tests, it is charged to no test; never released, to the module, once.
    # Where the plugin is off (from 0.24, which knows loop_scope), a clean module passes as it is; a
    # leaky one is the user's to see (pytest-asyncio before 1.1 closes loops before sessions close).
    version, python = pytest_asyncio
    if _release(version) < (0, 24):
        pytest.skip(f"pytest-asyncio {version} has no loop_scope for fixtures and tests")
    files = {"test_released": MODULE_FIXTURES.format(release="await api.close_session()")}
    if version in SUPPORTED:
        files["test_held_for_good"] = MODULE_FIXTURES.format(release="")
    directory = suite(tmp_path, version, **files)
    unchecked = run(python, directory, "-rA")
    assert unchecked.returncode == 0, unchecked.stdout + unchecked.stderr
    assert f"{2 * len(files)} passed" in unchecked.stdout, unchecked.stdout
    if version in UNSUPPORTED:
        return
    checked = run(python, directory, "-rA", "--asynctools-leak-check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "4 passed, 1 error" in checked.stdout, checked.stdout
    # Counted in the report sections: under CI=true pytest's short summary repeats each message whole.
    assert checked.stdout.split("short test summary info")[0].count("left behind") == 1, checked.stdout
    assert (
        "asynctools leak check: module test_held_for_good.py (on its module-scoped event loop; its "
        "fixtures: api) left behind:\n"
        "  - default_registry: session for http://127.0.0.1:9 acquired 1 time(s) more than released\n"
    ) in checked.stdout, checked.stdout


def test_a_leak_check_asked_for_never_passes_silently(
    pytest_asyncio: tuple[str, Path], tmp_path: Path
) -> None:
    version, python = pytest_asyncio
    directory = suite(tmp_path, version, test_leaky=LEAKY)
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
    from asynctools.pytest_plugin import _OLDEST_PYTEST_ASYNCIO, _RUNS_TESTS_IN_THEIR_RUNNER

    assert set(MATRIX) == set(UNSUPPORTED + SUPPORTED)
    assert all(_release(v) < _OLDEST_PYTEST_ASYNCIO for v in UNSUPPORTED)
    # One on each side of the line for the checks at a scope's end (see the plugin's docstring).
    assert any(_release(v) < _RUNS_TESTS_IN_THEIR_RUNNER for v in SUPPORTED)
    assert any(_release(v) >= _RUNS_TESTS_IN_THEIR_RUNNER for v in SUPPORTED)
    assert all(_release(v) >= _OLDEST_PYTEST_ASYNCIO for v in SUPPORTED)
    assert _release("1.0.0a1") == (1, 0, 0) and _release("0.23.8") == (0, 23, 8)
    assert _release("1.2.dev3") == (1, 2)
    assert sys.version_info >= (3, 10)
