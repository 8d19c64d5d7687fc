"""pytest plugin: a registry fixture, ``default_registry`` cleaned per test loop, and an opt-in leak check.

Loaded automatically (``pytest11`` entry point ``asynctools``) wherever asynctools is installed; it
changes no test's outcome unless the leak check is asked for. Async tests are those that
pytest-asyncio runs (pytest-aiohttp runs its tests through pytest-asyncio too); without pytest-asyncio
the plugin only provides the ``asynctools_registry`` fixture.

- ``asynctools_registry``: a ``SessionRegistry`` of the test's own, closed after the test on the
  test's event loop, whatever its ``loop_scope`` (a function-scoped loop closes it as it shuts down).
- No session one test leaves in ``default_registry`` reaches the next test: a function-scoped loop
  shuts down after its test, and the registry closes what it holds on a loop as the loop shuts down;
  on a loop shared by several tests (``loop_scope`` class, module, package, session) the plugin runs
  ``await asynctools.default_registry.close()`` on it after each test, unless a wider-scoped fixture
  still holds one of its sessions (acquired, or a container left attached) there: closing would close
  that fixture's session under it.
- The leak check, opted into with ``--asynctools-leak-check``, the ini option
  ``asynctools_leak_check = true`` or ``@pytest.mark.asynctools_leak_check`` on a test, class or
  module (``@pytest.mark.asynctools_leak_check(False)`` opts one out again): after the test and its
  function-scoped fixtures, the test fails (an error at teardown) when it left a ``ClientSession``
  open (one that owns its connector), a session acquired from ``default_registry`` or
  ``asynctools_registry`` and not released, a task pending on its loop, or a report on its loop's
  exception handler (aiohttp's "Unclosed client session" goes there). The message lists each leak.
  What already existed when the test started (made by wider-scoped fixtures) is not the test's. With
  the check on for a whole class, module or run, a shared loop is checked the same way when its scope
  ends (the class, the module; the session for ``loop_scope`` package and session), after that
  scope's fixtures are torn down, and what they left is reported once, as an error at teardown of the
  scope's last test, naming the scope and its fixtures.

Only public APIs of pytest, pytest-asyncio and asyncio are used, with no fallback to private ones (of
aiohttp, one attribute is read: ``ClientSession._loop``, to tell which loop a session left open belongs
to, as ``ClientSession.loop`` is deprecated). The plugin's async fixtures, declared
with ``pytest_asyncio.fixture(loop_scope=...)`` (one per loop scope), capture the running loop, which
is the test's when their loop scope is the test's (its ``asyncio`` marker, else
``asyncio_default_test_loop_scope``); the teardown runs ``loop.run_until_complete()`` on that loop once
the test's function-scoped fixtures are torn down and before pytest-asyncio closes it. pytest-asyncio
before 1.1 lacks that ini option and runs tests on loops of another kind (the ``event_loop``
fixture): there the plugin stays out of the way, says so in pytest's header, and refuses a leak check
asked for. pytest-asyncio 1.1 runs a test on the current event loop, which the loop created last
sets: there (and wherever ``pytest_asyncio_loop_factories`` makes a loop per parameter) a scope's loop
is watched only when the scope's first test runs on it, since watching starts that loop.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import itertools
import warnings
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import pytest

from . import SessionRegistry, default_registry

#: The oldest pytest-asyncio whose loops the guard can reach: from 1.1 each loop scope has one loop
#: that fixtures of that ``loop_scope`` share with its tests, and ``asyncio_default_test_loop_scope``
#: names the tests' default.
_OLDEST_PYTEST_ASYNCIO = (1, 1)
#: From 1.2 pytest-asyncio runs a test in its loop scope's runner, not on the current event loop.
_RUNS_TESTS_IN_THEIR_RUNNER = (1, 2)
_Scope = Literal["function", "class", "module", "package", "session"]
_SCOPES: tuple[_Scope, ...] = ("function", "class", "module", "package", "session")
#: The scopes whose loops outlive a test.
_WIDER: tuple[_Scope, ...] = ("class", "module", "package", "session")


def _release(version: str) -> tuple[int, ...]:
    """``"0.23.8"`` as ``(0, 23, 8)``; a pre-release's suffix (``"1.0.0a1"``) is dropped."""
    numbers = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def _pytest_asyncio_version() -> str | None:
    try:
        return importlib.metadata.version("pytest-asyncio")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - no pytest-asyncio: no async test
        return None


_is_async_test: Callable[[pytest.Item], bool] | None = None
_async_fixture: Callable[..., Any] | None = None
#: Why the guard is off though pytest-asyncio is there (shown in pytest's header), else ``None``.
_UNSUPPORTED: str | None = None
_found = _pytest_asyncio_version()
#: Whether a scope's loop may be started before its first test (see ``_watch_fixture``).
_EARLY_LOOPS_ARE_HARMLESS = _found is not None and _release(_found) >= _RUNS_TESTS_IN_THEIR_RUNNER
# The branches for an older pytest-asyncio run in tests/test_pytest_plugin_versions.py's venvs, out of
# this process (and its coverage): hence their pragmas.
if _found is not None and _release(_found) < _OLDEST_PYTEST_ASYNCIO:  # pragma: no cover
    # Older releases keep their loops elsewhere (an ``event_loop`` fixture, per-scope loop fixtures)
    # and lack the ini option read below: the plugin stays out of their way rather than guess.
    _UNSUPPORTED = (
        f"asynctools: pytest-asyncio {_found} is older than 1.1, so asynctools' per-test cleanup "
        f"of default_registry and its leak check are off (upgrade pytest-asyncio to turn them on)"
    )
elif _found is not None:
    try:
        from pytest_asyncio import fixture as _async_fixture
        from pytest_asyncio import is_async_test as _is_async_test
    except ImportError:  # pragma: no cover - a release without them: treat as no pytest-asyncio
        _is_async_test = _async_fixture = None

__all__ = ("asynctools_registry",)

_MARKER = "asynctools_leak_check"
_HELP = (
    "fail async tests that leave aiohttp ClientSessions open, asynctools sessions acquired and not "
    "released, tasks pending or reports on the loop's exception handler"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--asynctools-leak-check`` and the ini option ``asynctools_leak_check``."""
    group = parser.getgroup("asynctools")
    group.addoption("--asynctools-leak-check", action="store_true", default=False, help=_HELP)
    parser.addini(_MARKER, type="bool", default=False, help=_HELP)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say in pytest's header when the installed pytest-asyncio is too old for the guard."""
    return _UNSUPPORTED


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``asynctools_leak_check`` marker (so ``--strict-markers`` accepts it).

    Raises ``pytest.UsageError`` when the leak check is asked for suite-wide (option or ini) and the
    installed pytest-asyncio is too old for it: a check asked for must not silently pass.
    """
    if _UNSUPPORTED is not None and _asked_everywhere(config):
        raise pytest.UsageError(f"the leak check was asked for, but {_UNSUPPORTED}")  # pragma: no cover
    if _found is None and _asked_everywhere(config):  # pragma: no cover - pytest-asyncio is a test need
        raise pytest.UsageError(
            "the asynctools leak check was asked for, but it checks the async tests pytest-asyncio runs "
            "(pytest-aiohttp's too), and pytest-asyncio is not installed"
        )
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(enabled=True): {_HELP}; asynctools_leak_check(False) opts a test out",
    )
    config.stash[_STATE] = _State()


def _asked_everywhere(config: pytest.Config) -> bool:
    return bool(config.getoption("asynctools_leak_check") or config.getini(_MARKER))


def _leak_check_enabled(node: pytest.Item | pytest.Collector) -> bool:
    """Whether the closest ``asynctools_leak_check`` marker, else the option or ini, asks for the check."""
    marker = node.get_closest_marker(_MARKER)
    if marker is not None:
        return bool(marker.args[0] if marker.args else marker.kwargs.get("enabled", True))
    return _asked_everywhere(node.config)


def _loop_scope(item: pytest.Item) -> str:
    """The loop scope pytest-asyncio runs *item* in: its ``asyncio`` marker, else the ini default."""
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker is not None else None
    return str(scope or item.config.getini("asyncio_default_test_loop_scope") or "function")


def _runs_async(item: pytest.Item) -> bool:
    return _is_async_test is not None and isinstance(item, pytest.Function) and _is_async_test(item)


def _scope_node(item: pytest.Item, scope: str) -> pytest.Item | pytest.Collector | None:
    """The node whose end ends *item*'s loop of *scope*, as pytest caches a plugin's fixture of it.

    ``None`` for a class loop outside a class (it lasts one test, as a function loop does). A plugin's
    package-scoped fixture, pytest-asyncio's loop among them, lives as long as the session.
    """
    if scope == "class":
        return item.getparent(pytest.Class)
    if scope == "module":
        return item.getparent(pytest.Module)
    return item.session


# -- leak detection, shared with asynctools' own test suite -----------------------------------------


def _open_sessions() -> list[aiohttp.ClientSession]:
    return [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed]


def _describe_reports(reports: list[dict[str, Any]]) -> list[str]:
    return [f"the loop reported: {r.get('message')}" for r in reports]


def _pending_tasks(
    loop: asyncio.AbstractEventLoop, before: set[asyncio.Task[Any]]
) -> list[asyncio.Task[Any]]:
    """Tasks of *loop* not done and not in *before*, the calling task excepted."""
    current = asyncio.current_task() if loop.is_running() else None
    return [t for t in asyncio.all_tasks(loop) if t is not current and t not in before and not t.done()]


def _describe_open_sessions(before: weakref.WeakSet[aiohttp.ClientSession] | None = None) -> list[str]:
    """Collect garbage, then name every ``ClientSession`` still open (those in *before* excepted)."""
    gc.collect()
    return [f"session left open: {s!r}" for s in _open_sessions() if before is None or s not in before]


def _in_use(registry: SessionRegistry) -> Counter[str | None]:
    """Acquisitions not released, per site, in *registry* on the running loop."""
    counts: Counter[str | None] = Counter()
    for session in registry.stats().sessions:
        if session.users > 0:
            counts[session.origin] += session.users
    return counts


def _describe_in_use(name: str, counts: Counter[str | None]) -> list[str]:
    return [
        f"{name}: session for {origin or 'no site'} acquired {users} time(s) more than released"
        for origin, users in counts.items()
        if users > 0
    ]


def _session_loop(session: aiohttp.ClientSession) -> object:
    # aiohttp's public way to a session's loop, ClientSession.loop, is deprecated (it warns).
    return getattr(session, "_loop", None)


def _owns_connector(session: aiohttp.ClientSession) -> bool:
    """Whether closing *session* is up to whoever opened it: a session lent a connector (every one that
    asynctools' registries build on their shared pool) is closed with it, by the connector's owner."""
    return bool(session.connector_owner)


class _Recorder:
    """A loop's exception handler while a test or scope runs: it records a report, then passes it on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reports: list[dict[str, Any]] = []
        self.previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.reports.append(context)
        # Keep whatever the user's handler (or asyncio's default, which logs) did with it; a scope's
        # recorder under a test's does not record the test's reports again.
        handler = self.previous
        while isinstance(handler, _Recorder):
            handler = handler.previous
        if handler is not None:
            handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def stop(self) -> None:
        if self.loop.get_exception_handler() is self:  # else the user's own handler replaced it: keep it
            self.loop.set_exception_handler(self.previous)


@dataclass
class _Snapshot:
    """What was on a loop as a test or scope began; ``leaks()`` closes, names and cleans up what came since.

    *held*: what ``default_registry`` had in use on the loop then (wider-scoped fixtures hold it),
    taken on the loop by the async fixture that found the loop; the rest is taken here, outside it.
    With *check* off, only the registries are closed.
    """

    loop: asyncio.AbstractEventLoop
    held: Counter[str | None]
    check: bool
    registries: list[tuple[str, SessionRegistry]] = field(default_factory=list)
    #: Acquisitions of ``default_registry`` already charged to someone else: not named again.
    forgiven: Counter[str | None] = field(default_factory=Counter)
    #: What ``leaks()`` found acquired from ``default_registry`` since (and left so, if ``held``).
    left: Counter[str | None] = field(default_factory=Counter)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    sessions: weakref.WeakSet[aiohttp.ClientSession] = field(default_factory=weakref.WeakSet)
    recorder: _Recorder | None = None

    #: A test's snapshot on a loop it shares with wider-scoped fixtures (class, module, session): tasks
    #: pending there may be theirs (a module-scoped server's keep-alive handlers), so they are left to
    #: the scope's own check, and nothing found there is cancelled or closed (a fixture may still use it).
    shared: bool = False

    def __post_init__(self) -> None:
        self.registries.append(("default_registry", default_registry))
        if self.check:
            self.tasks = set(asyncio.all_tasks(self.loop))
            self.sessions = weakref.WeakSet(_open_sessions())
            self.recorder = _Recorder(self.loop)

    async def leaks(self, *, other_loops: bool) -> list[str]:
        """Close the registries on this loop (``default_registry`` unless held); if checking, name leaks.

        What ``default_registry`` has in use is compared with ``held``, the others' with nothing.
        *other_loops*: also name sessions left open on other loops (a test may make them; the fixtures
        of a scope, on its loop, may not).
        """
        problems: list[str] = []
        for name, registry in self.registries:
            held = self.held if registry is default_registry else Counter()
            if held or self.check:  # before close(), which forgets who held what
                left = _in_use(registry) - held
                if registry is default_registry:
                    self.left = left
                    left -= self.forgiven
                if self.check:
                    problems += _describe_in_use(name, left)
            if not held:
                await registry.close()
        if self.check:
            try:
                problems += await self._sweep(other_loops)
            finally:
                if self.recorder is not None:
                    self.recorder.stop()
        return problems

    async def _sweep(self, other_loops: bool) -> list[str]:
        loop = self.loop
        await asyncio.sleep(0)  # let done-callbacks of the sessions just closed run
        tasks = [] if self.shared else _pending_tasks(loop, self.tasks)
        problems = [f"task left pending: {t!r}" for t in tasks]
        with warnings.catch_warnings(record=True) as caught:
            # An "Unclosed client session" ResourceWarning raised as an error (filterwarnings = error)
            # would stop aiohttp before it reports to the loop: record it instead.
            warnings.simplefilter("always", ResourceWarning)
            gc.collect()
        reports = self.recorder.reports if self.recorder is not None else []
        # A report holds its session: name that session once, as reported.
        reported = {id(r.get("client_session") or r.get("connector")) for r in reports}
        problems += _describe_reports(reports)
        problems += [
            f"{w.category.__name__}: {w.message}"
            for w in caught
            if issubclass(w.category, ResourceWarning)
            and id(getattr(w, "source", None)) not in reported
            # An event loop some other code left unclosed (pytest-asyncio 1.1 leaks one after a sync
            # test's asyncio.run()): not this test's, and not what the check is about.
            and not isinstance(getattr(w, "source", None), asyncio.AbstractEventLoop)
            and not str(w.message).startswith("unclosed event loop")
        ]
        left = [
            s
            for s in _open_sessions()
            if s not in self.sessions
            and _owns_connector(s)
            and (other_loops or _session_loop(s) is loop)
            and id(s) not in reported
        ]
        problems += [f"session left open: {s!r}" for s in left]
        if self.shared:
            return problems  # a wider-scoped fixture may still use what is left: nothing is touched
        # Clean up, so that one leak is reported once.
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for session in left:
            if _session_loop(session) is loop:
                await session.close()
        return problems


def _fail(what: str, problems: list[str]) -> None:
    listing = "\n".join(f"  - {p}" for p in problems)
    pytest.fail(f"asynctools leak check: {what} left behind:\n{listing}", pytrace=False)


@dataclass
class _Watch:
    """A shared loop, watched from before its scope's fixtures are set up until they are torn down."""

    node: pytest.Item | pytest.Collector
    snapshot: _Snapshot
    #: Acquisitions of default_registry the tests on this loop were charged with and left held.
    charged: Counter[str | None] = field(default_factory=Counter)
    #: The scope's own fixtures torn down so far (named in the report).
    fixtures: list[str] = field(default_factory=list)
    kept: list[aiohttp.ClientSession] = field(default_factory=list)

    def keep_open_sessions(self) -> None:
        """Hold the sessions opened on this loop since the scope began, so that none is collected unclosed.

        Called as each wider-scoped fixture is torn down: a session it dropped there would be reported
        by aiohttp as it is collected, with the scope's check still to come.
        """
        kept = {id(s) for s in self.kept}
        self.kept += [
            s
            for s in _open_sessions()
            if s not in self.snapshot.sessions
            and _session_loop(s) is self.snapshot.loop
            and id(s) not in kept
        ]


@dataclass
class _State:
    """The plugin's state for one pytest run (in ``config.stash``)."""

    #: (scope, node) whose loop is watched, found at collection: the check is on for the node and one
    #: of its tests runs on that loop.
    watched: set[tuple[str, pytest.Item | pytest.Collector]] = field(default_factory=set)
    watches: dict[asyncio.AbstractEventLoop, _Watch] = field(default_factory=dict)
    #: Modules and classes whose markers were read (see ``pytest_pycollect_makeitem``).
    seen: set[pytest.Collector] = field(default_factory=set)
    item: pytest.Item | None = None


_STATE = pytest.StashKey[_State]()


# -- the fixtures ------------------------------------------------------------------------------------


def _loop_fixture(name: str, **scopes: str) -> Any:
    """An async fixture (pytest-asyncio runs it on the loop of its ``loop_scope``) that returns that loop
    and what ``default_registry`` has in use on it."""
    assert _async_fixture is not None

    async def on_loop() -> tuple[asyncio.AbstractEventLoop, Counter[str | None]]:
        return asyncio.get_running_loop(), _in_use(default_registry)

    return _async_fixture(on_loop, name=name, **scopes)


if _async_fixture is not None:
    for _scope in _SCOPES:
        # The loop a test of this loop scope runs on, for that test; and for its scope (set up once).
        globals()[f"_asynctools_{_scope}_loop"] = _loop_fixture(
            f"_asynctools_{_scope}_loop", loop_scope=_scope
        )
        if _scope != "function":
            globals()[f"_asynctools_{_scope}_scope_loop"] = _loop_fixture(
                f"_asynctools_{_scope}_scope_loop", scope=_scope, loop_scope=_scope
            )


@pytest.fixture(autouse=True)
def _asynctools_guard(request: pytest.FixtureRequest) -> _Snapshot | None:
    """For an async test: close ``default_registry`` on its loop afterwards, and check for leaks if asked.

    Asks for the async fixture of the test's loop scope, which pytest-asyncio sets up on the loop the
    test runs on, before the test's other function-scoped fixtures (and their loops); its own teardown
    comes after theirs, and runs on that loop. Fails the test with ``pytest.fail`` listing the leaks
    when the leak check is on and finds any. A function-scoped loop with the check off is left alone:
    it shuts down after the test, and every registry (``asynctools_registry`` too) closes what it
    holds there then.
    """
    item = request.node
    # Asked for by option or ini, pytest_configure has already stopped the run: only a marker is left.
    if _UNSUPPORTED is not None and _leak_check_enabled(item):  # pragma: no cover
        pytest.fail(f"{item.nodeid} asks for the leak check, but {_UNSUPPORTED}", pytrace=False)
    if not _runs_async(item):
        return None
    scope = _loop_scope(item)
    check = _leak_check_enabled(item)
    if scope not in _SCOPES or (scope == "function" and not check):
        return None
    loop, held = request.getfixturevalue(f"_asynctools_{scope}_loop")
    snapshot = _Snapshot(loop, held, check, shared=scope != "function")
    watch = request.config.stash[_STATE].watches.get(loop)

    def finish() -> None:
        if loop.is_closed():  # pragma: no cover - closed under pytest-asyncio, which says so
            return
        problems = loop.run_until_complete(snapshot.leaks(other_loops=True))
        if watch is not None and snapshot.held:  # not closed: the scope's check must not name it again
            watch.charged.update(snapshot.left)
        if problems:
            _fail(item.nodeid, problems)

    request.addfinalizer(finish)
    return snapshot


def _watch_fixture(scope: _Scope) -> Any:
    """The sync fixture a node asks for (``usefixtures``) when the check is on for it: it watches the
    loop of *scope* from before the scope's other fixtures to after them, if one of its tests runs there.
    """

    @pytest.fixture(scope=scope, name=f"_asynctools_{scope}_watch")
    def watch_scope(request: pytest.FixtureRequest) -> None:
        state = request.config.stash[_STATE]
        node = request.node
        if (scope, node) not in state.watched:
            return
        item = state.item
        # Watching starts the loop at the scope's first test, before the scope's fixtures. A test that
        # pytest-asyncio 1.1 runs on the current loop must not find this one instead of its own.
        first_runs_there = item is not None and _runs_async(item) and _loop_scope(item) == scope
        if not first_runs_there and (not _EARLY_LOOPS_ARE_HARMLESS or _loop_factories(request.config)):
            return
        loop, held = request.getfixturevalue(f"_asynctools_{scope}_scope_loop")
        watch = _Watch(node, _Snapshot(loop, held, check=True))
        state.watches[loop] = watch

        def finish() -> None:
            del state.watches[loop]
            if loop.is_closed():  # pragma: no cover - closed under pytest-asyncio, which says so
                return
            watch.snapshot.forgiven = watch.charged
            problems = loop.run_until_complete(watch.snapshot.leaks(other_loops=False))
            watch.kept.clear()
            if problems:
                where = f"{type(node).__name__.lower()} {node.nodeid}" if node.nodeid else "the session"
                fixtures = f"; its fixtures: {', '.join(watch.fixtures)}" if watch.fixtures else ""
                _fail(f"{where} (on its {scope}-scoped event loop{fixtures})", problems)

        request.addfinalizer(finish)

    return watch_scope


def _loop_factories(config: pytest.Config) -> bool:
    """Whether ``pytest_asyncio_loop_factories`` (pytest-asyncio 1.4+) makes loops per parameter."""
    hook = getattr(config.hook, "pytest_asyncio_loop_factories", None)
    return hook is not None and bool(hook.get_hookimpls())


for _scope in _WIDER:
    globals()[f"_asynctools_{_scope}_watch"] = _watch_fixture(_scope)


@pytest.fixture
def asynctools_registry(_asynctools_guard: _Snapshot | None) -> SessionRegistry:
    """A ``SessionRegistry`` for this test, closed after it (and its other fixtures) on the test's loop.

    In an async test (pytest-asyncio, any ``loop_scope``, auto or strict mode) the registry is closed
    on the loop the test ran on; with the leak check on, a session acquired from it and never released
    fails the test. A sync test gets a registry too; what it acquired under ``asyncio.run()`` is
    closed when that loop shuts down, as always.

        async def test_api(asynctools_registry):
            async with asynctools_registry.session("http://127.0.0.1:8080") as session:
                ...
    """
    registry = SessionRegistry()
    if _asynctools_guard is not None:
        _asynctools_guard.registries.append(("asynctools_registry", registry))
    return registry


# -- hooks -------------------------------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    """With the check on for the whole run, watch the session's shared loops too."""
    if _async_fixture is not None and _asked_everywhere(session.config):
        session.add_marker(pytest.mark.usefixtures("_asynctools_session_watch", "_asynctools_package_watch"))


def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> None:
    """Before a module's or class's tests are made, have them ask for its watch if the check is on there."""
    state = collector.config.stash[_STATE]
    if _async_fixture is None or collector in state.seen:
        return
    state.seen.add(collector)
    if _leak_check_enabled(collector):
        scope = "class" if isinstance(collector, pytest.Class) else "module"
        collector.add_marker(pytest.mark.usefixtures(f"_asynctools_{scope}_watch"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Find the scopes whose loops are watched: checked as a whole, with a test on that loop."""
    state = config.stash[_STATE]
    for item in items:
        if not _runs_async(item):
            continue
        scope = _loop_scope(item)
        if scope not in _WIDER:
            continue
        node = _scope_node(item, scope)
        if node is not None and (scope, node) not in state.watched and _leak_check_enabled(node):
            state.watched.add((scope, node))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the test being set up (a watch asks whether it runs on the watched loop)."""
    item.config.stash[_STATE].item = item


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    """As a wider-scoped fixture is torn down, hold what it left on a watched loop for that loop's check."""
    watches = request.config.stash[_STATE].watches
    if not watches or fixturedef.scope == "function":
        return
    chain = request.node.listchain()
    for watch in watches.values():
        if watch.node in chain:
            if watch.node is request.node and not fixturedef.argname.startswith("_"):
                watch.fixtures.append(fixturedef.argname)  # one of the scope's own
            watch.keep_open_sessions()
