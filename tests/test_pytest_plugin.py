"""The pytest plugin (asynctools.pytest_plugin), run on users' test files in a pytest of their own.

Each test writes a small test module and runs pytest on it in a subprocess (``pytester``), with the
plugin loaded as users get it: through the ``pytest11`` entry point once the package is installed with
it, else with ``-p asynctools.pytest_plugin``. Servers are real ones on loopback (pytest-aiohttp's
``aiohttp_server`` / ``aiohttp_client``).
"""

from __future__ import annotations

import importlib.metadata

import pytest

pytest_plugins = ["pytester"]

ENTRY_POINT_INSTALLED = bool(importlib.metadata.entry_points(group="pytest11", name="asynctools"))

INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
{extra}
"""


def run(pytester: pytest.Pytester, *args: str, plugin: bool = True) -> pytest.RunResult:
    """Run pytest on pytester's directory in a subprocess, with the plugin loaded or kept out."""
    if plugin and not ENTRY_POINT_INSTALLED:
        args = ("-p", "asynctools.pytest_plugin", *args)
    if not plugin and ENTRY_POINT_INSTALLED:
        args = ("-p", "no:asynctools", *args)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:cov", "-rA", *args)


def ini(pytester: pytest.Pytester, mode: str = "auto", extra: str = "") -> None:
    pytester.makefile(".ini", pytest=INI.format(mode=mode, extra=extra))


# Each inner test leaks one thing; "clean" tests after them show that a leak fails its own test only.
LEAKS = """
import asyncio
import aiohttp
import pytest
import asynctools

HELD = []

async def test_held_session():
    HELD.append(aiohttp.ClientSession())

async def test_dropped_session():
    session = aiohttp.ClientSession()
    del session

async def test_default_registry_not_released():
    await asynctools.default_registry.acquire("http://127.0.0.1:9")

async def test_fixture_registry_not_released(asynctools_registry):
    await asynctools_registry.acquire("http://127.0.0.1:9")

async def test_task_pending():
    asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="forgotten-task")

async def test_loop_report():
    asyncio.get_running_loop().call_exception_handler({"message": "something went wrong here"})

async def test_clean(asynctools_registry):
    async with asynctools_registry.session("http://127.0.0.1:9"):
        pass
    async with asynctools.default_registry.session("http://127.0.0.1:9"):
        pass
"""

LEAK_LINES = {
    "test_held_session": "session left open: <aiohttp.client.ClientSession object at *>",
    "test_dropped_session": "the loop reported: Unclosed client session",
    "test_default_registry_not_released": (
        "default_registry: session for http://127.0.0.1:9 acquired 1 time(s) more than released"
    ),
    "test_fixture_registry_not_released": (
        "asynctools_registry: session for http://127.0.0.1:9 acquired 1 time(s) more than released"
    ),
    "test_task_pending": "task left pending: <Task pending name='forgotten-task'*",
    "test_loop_report": "the loop reported: something went wrong here",
}


def test_each_kind_of_leak_fails_its_test_and_is_named(pytester: pytest.Pytester) -> None:
    # ResourceWarning as an error would make aiohttp raise in __del__ before it reports to the loop.
    ini(pytester, extra="    ignore::ResourceWarning\n    ignore::pytest.PytestUnraisableExceptionWarning")
    pytester.makepyfile(test_leaks=LEAKS)
    result = run(pytester, "--asynctools-leak-check")
    result.assert_outcomes(passed=len(LEAK_LINES) + 1, errors=len(LEAK_LINES))
    for name, line in LEAK_LINES.items():
        result.stdout.fnmatch_lines(
            [
                f"*ERROR at teardown of {name}*",
                f"asynctools leak check: test_leaks.py::{name} left behind:",
                f"  - {line}",
            ]
        )
        # Exactly the one leak of that test: the next line is no other "  - " item.
        text = result.stdout.str()
        block = text.split(f"test_leaks.py::{name} left behind:\n", 1)[1]
        assert not block.split("\n")[1].startswith("  - "), block[:500]
    assert "PASSED test_leaks.py::test_clean" in result.stdout.str()


LEAKY = """
import aiohttp
import pytest

HELD = []

async def test_leaky():
    HELD.append(aiohttp.ClientSession())
"""


@pytest.mark.parametrize(
    ("how", "fails"),
    [
        ("off", False),
        ("flag", True),
        ("ini", True),
        ("test marker", True),
        ("module marker", True),
        ("flag, test opted out", False),
    ],
)
def test_the_leak_check_is_opt_in(pytester: pytest.Pytester, how: str, fails: bool) -> None:
    ini(pytester, extra="asynctools_leak_check = true" if how == "ini" else "")
    source = LEAKY
    if how == "test marker":
        source = source.replace(
            "async def test_leaky", "@pytest.mark.asynctools_leak_check\nasync def test_leaky"
        )
    if how == "module marker":
        source += "\npytestmark = pytest.mark.asynctools_leak_check\n"
    if how == "flag, test opted out":
        source = source.replace(
            "async def test_leaky", "@pytest.mark.asynctools_leak_check(False)\nasync def test_leaky"
        )
    pytester.makepyfile(test_leaky=source)
    result = run(
        pytester, "--strict-markers", *(["--asynctools-leak-check"] if how.startswith("flag") else [])
    )
    if fails:
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(
            ["*asynctools leak check*test_leaky left behind:", "  - session left open: *"]
        )
    else:
        result.assert_outcomes(passed=1)
        assert "asynctools leak check" not in result.stdout.str()


def test_a_clean_test_against_a_loopback_server_passes_the_check_in_strict_mode(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester, mode="strict")
    pytester.makepyfile(
        test_clean="""
        import pytest
        from aiohttp import web
        import asynctools

        class Api(asynctools.AbstractSessionContainer):
            @asynctools.attach_session
            async def hello(self, url, session=None):
                async with session.get(url) as resp:
                    return await resp.text()

        async def hello(request):
            return web.Response(text="hello")

        @pytest.mark.asyncio
        async def test_container_calls(aiohttp_server, asynctools_registry):
            app = web.Application()
            app.router.add_get("/", hello)
            server = await aiohttp_server(app)
            url = str(server.make_url("/"))
            api = Api(url, registry=asynctools_registry)
            async with api:
                assert await api.hello(url) == "hello"
            assert await Api(url).hello(url) == "hello"  # default_registry
            assert asynctools_registry.stats().open == 1  # kept idle, for the plugin to close

        def test_a_sync_test_gets_a_registry(asynctools_registry):
            assert isinstance(asynctools_registry, asynctools.SessionRegistry)
        """
    )
    result = run(pytester, "--asynctools-leak-check")
    result.assert_outcomes(passed=2)


SHARED_LOOP = """
import pytest
import asynctools

REGISTRIES = []

@pytest.mark.asyncio(loop_scope="{scope}")
class TestShared:
    async def test_first(self, asynctools_registry):
        REGISTRIES.append(asynctools_registry)
        async with asynctools_registry.session("http://127.0.0.1:9"):
            pass
        async with asynctools.default_registry.session("http://127.0.0.1:9"):
            pass
        # Both released and kept idle: only the plugin closes them before the next test.
        assert asynctools_registry.stats().open == 1
        assert asynctools.default_registry.stats().open == 1

    async def test_second(self):
        assert asynctools.default_registry.stats().open == 0
        assert REGISTRIES[0].stats().open == 0
"""


@pytest.mark.parametrize("mode", ["auto", "strict"])
@pytest.mark.parametrize("scope", ["class", "module", "package", "session"])
def test_registries_are_closed_on_the_tests_loop_whatever_its_scope(
    pytester: pytest.Pytester, scope: str, mode: str
) -> None:
    # Two tests on one loop: the second sees what the first left behind on it.
    ini(pytester, mode=mode)
    pytester.makepyfile(__init__="")  # a package, for loop_scope="package"
    pytester.makepyfile(test_shared=SHARED_LOOP.format(scope=scope))
    run(pytester, "--asynctools-leak-check").assert_outcomes(passed=2)


@pytest.mark.parametrize("scope", ["module", "session"])
def test_without_the_plugin_a_shared_loop_keeps_what_a_test_left(
    pytester: pytest.Pytester, scope: str
) -> None:
    # The control for the test above: its second test fails without the plugin, so what it sees is
    # the plugin's doing, not the loop's shutdown.
    ini(pytester)
    pytester.makepyfile(test_shared=SHARED_LOOP.format(scope=scope))
    pytester.makeconftest(
        """
        import pytest
        import asynctools

        @pytest.fixture
        def asynctools_registry():  # the same registry, never closed
            return asynctools.SessionRegistry()
        """
    )
    result = run(pytester, plugin=False)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_second*", "*assert 1 == 0*"])


def test_function_loops_see_no_session_of_an_earlier_test(pytester: pytest.Pytester) -> None:
    # Each function-scoped loop gets the default registry clean, with no "Unclosed client session"
    # and no "Event loop is closed" (warnings are errors in this run).
    ini(pytester)
    pytester.makepyfile(
        test_function_loops="""
        import asynctools

        async def test_leaves_a_session_acquired():
            await asynctools.default_registry.acquire("http://127.0.0.1:9")

        async def test_leaves_a_session_idle():
            assert asynctools.default_registry.stats().open == 0
            async with asynctools.default_registry.session("http://127.0.0.1:9"):
                pass

        async def test_sees_none():
            assert asynctools.default_registry.stats().open == 0
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert "Unclosed" not in result.stdout.str() and "Event loop is closed" not in result.stdout.str()


def test_pytest_aiohttp_fixtures_are_no_leaks_and_a_leak_beside_them_is(pytester: pytest.Pytester) -> None:
    # aiohttp_client's own session is open during the test and closed in its teardown, before the check.
    ini(pytester)
    pytester.makepyfile(
        test_aiohttp="""
        from aiohttp import web
        import asynctools

        async def hello(request):
            return web.Response(text="hello")

        def make_app():
            app = web.Application()
            app.router.add_get("/", hello)
            return app

        async def test_client(aiohttp_client, asynctools_registry):
            client = await aiohttp_client(make_app())
            resp = await client.get("/")
            assert await resp.text() == "hello"
            async with asynctools_registry.session(str(client.make_url("/"))) as session:
                async with session.get(client.make_url("/")) as resp:
                    assert await resp.text() == "hello"

        async def test_client_and_a_leak(aiohttp_client, asynctools_registry):
            client = await aiohttp_client(make_app())
            session = await asynctools_registry.acquire(str(client.make_url("/")))
            async with session.get(client.make_url("/")) as resp:
                assert await resp.text() == "hello"
        """
    )
    result = run(pytester, "--asynctools-leak-check")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_client_and_a_leak left behind:",
            "  - asynctools_registry: session for http://127.0.0.1:* acquired 1 time(s) more than released",
        ]
    )
    assert "test_client left behind" not in result.stdout.str()


def test_the_entry_point_loads_the_plugin_without_being_asked(pytester: pytest.Pytester) -> None:
    assert ENTRY_POINT_INSTALLED, "pip install -e . to install the pytest11 entry point 'asynctools'"
    ini(pytester)
    pytester.makepyfile(test_plain="def test_plain(asynctools_registry):\n    assert asynctools_registry\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--asynctools-leak-check")
    result.assert_outcomes(passed=1)
