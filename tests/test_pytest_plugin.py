"""The pytest plugin (asynctools.pytest_plugin), run on users' test files in a pytest of their own.

Each test writes small test modules and runs pytest on them (``pytester``) in this process, with the
plugin loaded as users get it: through the ``pytest11`` entry point once the package is installed with
it, else with ``-p asynctools.pytest_plugin``. The tests marked slow run pytest in a subprocess, as a
user's fresh interpreter would. Servers are real ones on loopback (pytest-aiohttp's ``aiohttp_server``
/ ``aiohttp_client``).
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


def arguments(*args: str, plugin: bool = True) -> tuple[str, ...]:
    """pytest's arguments for a run with the plugin loaded, or kept out."""
    if plugin and not ENTRY_POINT_INSTALLED:
        args = ("-p", "asynctools.pytest_plugin", *args)
    if not plugin and ENTRY_POINT_INSTALLED:
        args = ("-p", "no:asynctools", *args)
    return ("-p", "no:cacheprovider", "-p", "no:cov", "-rA", *args)


def run(pytester: pytest.Pytester, *args: str, plugin: bool = True) -> pytest.RunResult:
    """Run pytest on pytester's directory in this process, with the plugin loaded or kept out."""
    return pytester.runpytest_inprocess(*arguments(*args, plugin=plugin))


def ini(pytester: pytest.Pytester, mode: str = "auto", extra: str = "") -> None:
    pytester.makefile(".ini", pytest=INI.format(mode=mode, extra=extra))


def block_after(result: pytest.RunResult, header: str) -> list[str]:
    """The "  - " lines right after the line ending with *header*: one leak each."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.endswith(header)) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  - "):
            break
        block.append(line)
    return block


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

async def test_a_registry_of_its_own_left_idle_is_no_leak():
    registry = asynctools.SessionRegistry()
    async with registry.session("http://127.0.0.1:9"):
        pass  # idle now, on the registry's pool: it closes it with the loop
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
    result.assert_outcomes(passed=len(LEAK_LINES) + 2, errors=len(LEAK_LINES))
    for name, line in LEAK_LINES.items():
        result.stdout.fnmatch_lines(
            [
                f"*ERROR at teardown of {name}*",
                f"asynctools leak check: test_leaks.py::{name} left behind:",
                f"  - {line}",
            ]
        )
        # Exactly the one leak of that test.
        assert len(block_after(result, f"test_leaks.py::{name} left behind:")) == 1, result.stdout.str()
    for name in ("test_clean", "test_a_registry_of_its_own_left_idle_is_no_leak"):
        assert f"PASSED test_leaks.py::{name}" in result.stdout.lines, result.stdout.str()
        assert f"{name} left behind" not in result.stdout.str()


@pytest.mark.slow
def test_the_leak_check_in_a_fresh_interpreter(pytester: pytest.Pytester) -> None:
    # The suites above and below, in a subprocess: the plugin as loaded at start-up, before anything is
    # imported, and objects freed as soon as nothing holds them (which this process does not show).
    ini(pytester, extra="    ignore::ResourceWarning\n    ignore::pytest.PytestUnraisableExceptionWarning")
    pytester.makepyfile(test_leaks=LEAKS)
    result = pytester.runpytest_subprocess(*arguments("--asynctools-leak-check"))
    result.assert_outcomes(passed=len(LEAK_LINES) + 2, errors=len(LEAK_LINES))
    for name, line in LEAK_LINES.items():
        result.stdout.fnmatch_lines(
            [f"asynctools leak check: test_leaks.py::{name} left behind:", f"  - {line}"]
        )
    # A module fixture's session, dropped unclosed as the fixture ends: flagged once, by the plugin
    # (without it, aiohttp's "Unclosed client session" would fail the run after the tests).
    ini(pytester)
    pytester.makepyfile(
        test_leaks="",
        test_never=WIDER["test_session_never_closed"].format(mark=", pytest.mark.asynctools_leak_check"),
    )
    result = pytester.runpytest_subprocess(*arguments())
    result.assert_outcomes(passed=3, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["asynctools leak check: module test_never.py *", "  - session left open: *"])
    assert "Unclosed" not in result.stdout.str() + result.stderr.str()


LEAKY = """
import aiohttp
import pytest

HELD = []

{mark}
async def test_leaky():
    HELD.append(aiohttp.ClientSession())

def teardown_module():
    # After the check: what it did not close (unchecked), this run must not leave to the next one
    # in this process. Never used, the session has no connection to close.
    for session in HELD:
        session.detach()
"""

LEAKY_FILES = {
    "test_unmarked": LEAKY.format(mark=""),
    "test_marked": LEAKY.format(mark="@pytest.mark.asynctools_leak_check"),
    "test_module_marked": LEAKY.format(mark="") + "\npytestmark = pytest.mark.asynctools_leak_check\n",
    "test_opted_out": LEAKY.format(mark="@pytest.mark.asynctools_leak_check(False)"),
    "test_opted_out_by_keyword": LEAKY.format(mark="@pytest.mark.asynctools_leak_check(enabled=False)"),
}


@pytest.mark.parametrize(
    ("how", "checked"),
    [
        ("markers", {"test_marked", "test_module_marked"}),
        ("flag", {"test_unmarked", "test_marked", "test_module_marked"}),
        ("ini", {"test_unmarked", "test_marked", "test_module_marked"}),
    ],
)
def test_the_leak_check_is_opt_in(pytester: pytest.Pytester, how: str, checked: set[str]) -> None:
    # Each file leaks one session: only those the check is on for fail.
    ini(pytester, extra="asynctools_leak_check = true" if how == "ini" else "")
    pytester.makepyfile(**LEAKY_FILES)
    result = run(pytester, "--strict-markers", *(["--asynctools-leak-check"] if how == "flag" else []))
    result.assert_outcomes(passed=len(LEAKY_FILES), errors=len(checked))
    for name in LEAKY_FILES:
        header = f"asynctools leak check: {name}.py::test_leaky left behind:"
        if name in checked:
            result.stdout.fnmatch_lines([header, "  - session left open: *"])
        else:
            assert header not in result.stdout.lines, result.stdout.str()


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
        async with asynctools.default_registry.session("http://127.0.0.1:9"):
            pass
        assert asynctools.default_registry.stats().open == 1

    async def test_third(self):  # after a test that asked for no fixture of asynctools
        assert asynctools.default_registry.stats().open == 0
"""


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_registries_are_closed_on_the_tests_loop_whatever_its_scope(
    pytester: pytest.Pytester, mode: str, check: bool
) -> None:
    # Two tests on one loop: the second sees what the first left behind on it. A module per scope.
    ini(pytester, mode=mode)
    pytester.makepyfile(__init__="")  # a package, for loop_scope="package"
    scopes = ("class", "module", "package", "session")
    pytester.makepyfile(**{f"test_{scope}": SHARED_LOOP.format(scope=scope) for scope in scopes})
    result = run(pytester, *(["--asynctools-leak-check"] if check else []))
    result.assert_outcomes(passed=3 * len(scopes))


def test_without_the_plugin_a_shared_loop_keeps_what_a_test_left(pytester: pytest.Pytester) -> None:
    # The control for the test above: its second tests fail without the plugin, so what they see is
    # the plugin's doing, not the loop's shutdown.
    ini(pytester)
    pytester.makepyfile(
        **{f"test_{scope}": SHARED_LOOP.format(scope=scope) for scope in ("module", "session")}
    )
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
    result.assert_outcomes(passed=2, failed=4)
    for name in ("test_second", "test_third"):
        result.stdout.fnmatch_lines([f"*TestShared.{name}*", "*assert 1 == 0*"])


def test_function_loops_see_no_session_of_an_earlier_test(pytester: pytest.Pytester) -> None:
    # Each function-scoped loop gets the default registry clean, with no "Unclosed client session"
    # and no "Event loop is closed" (warnings are errors in this run): without the check, the
    # plugin leaves these loops alone, and the registry closes its sessions as each loop shuts down.
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


# Module-scoped fixtures on the module's loop, shared by its tests. {mark} turns the check on for the
# module (or not); the tests also pass without the plugin, and must with it.
WIDER = {
    "test_held_and_released": """
        import pytest
        import pytest_asyncio
        import asynctools

        pytestmark = [pytest.mark.asyncio(loop_scope="module"){mark}]

        class Api(asynctools.AbstractSessionContainer):
            pass

        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def api():
            async with Api("http://127.0.0.1:9") as api:
                yield api

        async def test_first(api):
            assert asynctools.default_registry.stats().in_use == 1

        async def test_second(api):
            # Still attached: no cleanup between the tests closed the module's session under it.
            assert api.session is not None and not api.session.closed
            assert asynctools.default_registry.stats().in_use == 1
        """,
    "test_held_for_good": """
        import pytest
        import pytest_asyncio
        import asynctools

        pytestmark = [pytest.mark.asyncio(loop_scope="module"){mark}]

        class Api(asynctools.AbstractSessionContainer):
            pass

        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def api():
            api = Api("http://127.0.0.1:9")
            await api.start_session()  # and never close_session()
            yield api

        async def test_first(api):
            assert api.session is not None

        async def test_leaks_one_of_its_own(api):
            await asynctools.default_registry.acquire("http://127.0.0.1:10")

        async def test_second(api):
            assert api.session is not None and not api.session.closed
        """,
    "test_session_never_closed": """
        import aiohttp
        import pytest
        import pytest_asyncio

        pytestmark = [pytest.mark.asyncio(loop_scope="module"){mark}]

        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def client_session():
            return aiohttp.ClientSession()

        async def test_first(client_session):
            assert not client_session.closed

        async def test_second(client_session):
            assert not client_session.closed

        async def test_last():  # holds no argument: the fixture's session is dropped as it ends
            pass
        """,
}


def test_what_a_module_fixture_holds_is_checked_at_the_modules_end(pytester: pytest.Pytester) -> None:
    ini(pytester)
    pytester.makepyfile(
        **{name: text.format(mark=", pytest.mark.asynctools_leak_check") for name, text in WIDER.items()}
    )
    result = run(pytester)
    # Every test passes; the one function-scoped leak fails its test, each module's leaks fail once.
    result.assert_outcomes(passed=8, errors=3)
    text = result.stdout.str()
    # Counted in the report sections: under CI=true pytest's short summary repeats each message whole.
    assert text.split("short test summary info")[0].count("left behind") == 3, text
    assert "test_first left behind" not in text and "test_held_and_released.py (" not in text
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_one_of_its_own*",
            "asynctools leak check: test_held_for_good.py::test_leaks_one_of_its_own left behind:",
            "  - default_registry: session for http://127.0.0.1:10 acquired 1 time(s) more than released",
        ]
    )
    header = "test_held_for_good.py (on its module-scoped event loop; its fixtures: api) left behind:"
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_second*", f"asynctools leak check: module {header}"]
    )
    # The module's leak, reported once, and not the test's again.
    assert block_after(result, header) == [
        "  - default_registry: session for http://127.0.0.1:9 acquired 1 time(s) more than released"
    ]
    header = (
        "test_session_never_closed.py (on its module-scoped event loop; its fixtures: client_session) "
        "left behind:"
    )
    result.stdout.fnmatch_lines([f"asynctools leak check: module {header}"])
    (line,) = block_after(result, header)
    assert line.startswith("  - session left open: <aiohttp.client.ClientSession object at "), line
    assert "Unclosed" not in text, text  # flagged once: closed after it was named


def test_module_fixtures_pass_as_without_the_plugin_when_the_check_is_off(pytester: pytest.Pytester) -> None:
    # The same modules, unchecked: the plugin changes no outcome (the old per-test close() of
    # default_registry closed test_held_and_released's session under its second test).
    ini(pytester, extra="    ignore::ResourceWarning\n    ignore::pytest.PytestUnraisableExceptionWarning")
    pytester.makepyfile(**{name: text.format(mark="") for name, text in WIDER.items()})
    with_plugin = run(pytester)
    with_plugin.assert_outcomes(passed=8)
    run(pytester, plugin=False).assert_outcomes(passed=8)


def test_class_and_session_fixtures_are_checked_at_their_end(pytester: pytest.Pytester) -> None:
    ini(pytester, mode="strict")
    pytester.makeconftest(
        """
        import pytest_asyncio
        import asynctools

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def held_for_the_session():
            session = await asynctools.default_registry.acquire("http://127.0.0.1:7")
            yield session
            await asynctools.default_registry.release(session)

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def held_for_good():
            return await asynctools.default_registry.acquire("http://127.0.0.1:8")
        """
    )
    pytester.makepyfile(
        test_scopes="""
        import asyncio
        import pytest
        import pytest_asyncio

        @pytest_asyncio.fixture(scope="class", loop_scope="class")
        async def background():
            yield asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="class-task")

        @pytest.mark.asyncio(loop_scope="class")
        class TestOneLoop:
            async def test_first(self, background):
                assert not background.done()
                asyncio.get_running_loop().call_exception_handler({"message": "in the class's first test"})

            async def test_second(self, background):
                assert not background.done()

        @pytest.mark.asyncio(loop_scope="session")
        async def test_session_loop(held_for_the_session, held_for_good):
            assert not held_for_the_session.closed

        @pytest.mark.asyncio
        async def test_a_function_loop(held_for_the_session):
            pass

        def test_last():
            pass
        """
    )
    result = run(pytester, "--asynctools-leak-check")
    result.assert_outcomes(passed=5, errors=3)
    # A report on the class's loop during a test is the test's, and not the class's again.
    header = "test_scopes.py::TestOneLoop::test_first left behind:"
    assert block_after(result, header) == ["  - the loop reported: in the class's first test"]
    header = (
        "class test_scopes.py::TestOneLoop (on its class-scoped event loop; its fixtures: background) "
        "left behind:"
    )
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of TestOneLoop.test_second*", f"asynctools leak check: {header}"]
    )
    assert len(block_after(result, header)) == 1
    assert block_after(result, header)[0].startswith("  - task left pending: <Task pending name='class-task'")
    header = (
        "the session (on its session-scoped event loop; its fixtures: held_for_good, held_for_the_session) "
        "left behind:"
    )
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_last*", f"asynctools leak check: {header}"])
    assert block_after(result, header) == [
        "  - default_registry: session for http://127.0.0.1:8 acquired 1 time(s) more than released"
    ]


def test_the_entry_point_loads_the_plugin_without_being_asked(pytester: pytest.Pytester) -> None:
    assert ENTRY_POINT_INSTALLED, "pip install -e . to install the pytest11 entry point 'asynctools'"
    ini(pytester)
    pytester.makepyfile(test_plain="def test_plain(asynctools_registry):\n    assert asynctools_registry\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:cov", "--asynctools-leak-check")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_the_entry_point_loads_the_plugin_in_a_fresh_interpreter(pytester: pytest.Pytester) -> None:
    assert ENTRY_POINT_INSTALLED, "pip install -e . to install the pytest11 entry point 'asynctools'"
    ini(pytester)
    pytester.makepyfile(test_plain="def test_plain(asynctools_registry):\n    assert asynctools_registry\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--asynctools-leak-check")
    result.assert_outcomes(passed=1)


SHARED_SERVER = """
import asyncio

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

pytestmark = pytest.mark.asyncio(loop_scope="module")
KEEP = []


async def hello(request):
    return web.Response(text="hi")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server():
    app = web.Application()
    app.router.add_get("/", hello)
    async with TestServer(app) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client():
    async with aiohttp.ClientSession() as session:
        yield session


async def test_one(server, client):
    async with client.get(server.make_url("/")) as resp:  # the server's keep-alive handler stays
        assert await resp.text() == "hi"


async def test_two(server, client):
    async with client.get(server.make_url("/")) as resp:
        assert await resp.text() == "hi"
{leak}
"""

TASK_LEAK = """

async def test_three_leaks_a_task():
    KEEP.append(asyncio.ensure_future(asyncio.Event().wait()))
"""


def test_a_module_scoped_server_and_client_pass_the_check_and_a_task_leak_goes_to_the_module(
    pytester: pytest.Pytester,
) -> None:
    # A wider-scoped server's handler tasks are pending between its tests: not the tests' leak, and
    # never cancelled under the fixtures (the next request would then wait for ever).
    ini(pytester)
    pytester.makepyfile(test_inner_shared_server=SHARED_SERVER.format(leak=""))
    run(pytester, "--asynctools-leak-check").assert_outcomes(passed=2)
    pytester.makepyfile(test_inner_shared_server=SHARED_SERVER.format(leak=TASK_LEAK))
    result = run(pytester, "--asynctools-leak-check")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*module test_inner_shared_server.py (on its module-scoped*left behind:"])
    assert "test_three_leaks_a_task left behind" not in result.stdout.str()


def test_an_event_loop_left_unclosed_by_others_is_not_a_tests_leak(pytester: pytest.Pytester) -> None:
    # pytest-asyncio 1.1 leaves one unclosed after a sync test's asyncio.run(); collected during the next
    # async test's check, its ResourceWarning is not that test's leak.
    ini(pytester)
    pytester.makepyfile(
        test_inner_unclosed_loop="""
import asyncio

LOOPS = []


async def test_a():
    pass


def test_leaves_a_loop_unclosed():
    LOOPS.append(asyncio.new_event_loop())
    LOOPS.clear()  # collected later, unclosed


async def test_b():
    pass
"""
    )
    run(pytester, "--asynctools-leak-check").assert_outcomes(passed=3)
