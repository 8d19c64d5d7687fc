"""pytest plugin: a registry fixture, ``default_registry`` cleaned per test loop, and an opt-in leak check.

Loaded automatically (``pytest11`` entry point ``asynctools``) wherever asynctools is installed; it
changes no test's outcome unless the leak check is asked for. Async tests are those that
pytest-asyncio runs (pytest-aiohttp runs its tests through pytest-asyncio too); without pytest-asyncio
the plugin only provides the ``asynctools_registry`` fixture.

- ``asynctools_registry``: a ``SessionRegistry`` of the test's own, closed after the test on the
  test's event loop (whatever its ``loop_scope``).
- After every async test, ``await asynctools.default_registry.close()`` runs on that test's loop, so
  no session one test leaves in the default registry reaches the next test.
- The leak check, opted into with ``--asynctools-leak-check``, the ini option
  ``asynctools_leak_check = true`` or ``@pytest.mark.asynctools_leak_check`` on a test, class or
  module (``@pytest.mark.asynctools_leak_check(False)`` opts one out again): after the test and its
  function-scoped fixtures, the test fails (an error at teardown) when it left a ``ClientSession``
  open, a session acquired from ``default_registry`` or ``asynctools_registry`` and not released, a
  task pending on its loop, or a report on its loop's exception handler (aiohttp's
  "Unclosed client session" goes there). The message lists each leak.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import itertools
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from . import SessionRegistry, default_registry

#: The oldest pytest-asyncio whose loops the guard can reach: from 1.1 each loop scope has a runner
#: fixture and the ini option ``asyncio_default_test_loop_scope`` exists.
_OLDEST_PYTEST_ASYNCIO = (1, 1)


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
#: Why the guard is off though pytest-asyncio is there (shown in pytest's header), else ``None``.
_UNSUPPORTED: str | None = None
_found = _pytest_asyncio_version()
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
        from pytest_asyncio import is_async_test as _is_async_test
    except ImportError:  # pragma: no cover - a release without it: treat as no pytest-asyncio
        _is_async_test = None

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
    if _UNSUPPORTED is not None and (config.getoption("asynctools_leak_check") or config.getini(_MARKER)):
        raise pytest.UsageError(f"the leak check was asked for, but {_UNSUPPORTED}")  # pragma: no cover
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(enabled=True): {_HELP}; asynctools_leak_check(False) opts a test out",
    )


def _leak_check_enabled(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(_MARKER)
    if marker is not None:
        return bool(marker.args[0] if marker.args else marker.kwargs.get("enabled", True))
    return bool(item.config.getoption("asynctools_leak_check") or item.config.getini(_MARKER))


def _loop_scope(item: pytest.Item) -> str:
    """The loop scope pytest-asyncio runs *item* in: its ``asyncio`` marker, else the ini default."""
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker is not None else None
    return str(scope or item.config.getini("asyncio_default_test_loop_scope") or "function")


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


def _describe_in_use(name: str, registry: SessionRegistry) -> list[str]:
    stats = registry.stats()
    return [
        f"{name}: session for {s.origin or 'no site'} acquired {s.users} time(s) more than released"
        for s in stats.sessions
        if s.users > 0
    ]


# -- the per-test guard ------------------------------------------------------------------------------


@dataclass
class _Guard:
    """What the plugin keeps for one async test: its loop's runner and, with the check on, snapshots."""

    runner: Any  # asyncio.Runner (3.11+), or pytest-asyncio's backport of it
    check: bool
    registries: list[tuple[str, SessionRegistry]] = field(default_factory=list)
    tasks_before: set[asyncio.Task[Any]] = field(default_factory=set)
    sessions_before: weakref.WeakSet[aiohttp.ClientSession] = field(default_factory=weakref.WeakSet)
    reports: list[dict[str, Any]] = field(default_factory=list)
    previous_handler: Any = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = self.runner.get_loop()
        return loop

    def start(self) -> None:
        if not self.check:
            return
        loop = self.loop
        self.tasks_before = set(asyncio.all_tasks(loop))
        self.sessions_before = weakref.WeakSet(_open_sessions())
        self.previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._record)

    def _record(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.reports.append(context)
        # Keep whatever the user's handler (or asyncio's default, which logs) did with it.
        if self.previous_handler is not None:
            self.previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def finish(self) -> list[str]:
        """Close ``default_registry`` and the fixture's registry on this loop; if checking, name leaks."""
        problems: list[str] = []
        if self.check:  # before close(), which forgets who held what
            for name, registry in self.registries:
                problems += _describe_in_use(name, registry)
        for _, registry in self.registries:
            await registry.close()
        if not self.check:
            return problems
        loop = self.loop
        try:
            await asyncio.sleep(0)  # let done-callbacks of the sessions just closed run
            tasks = _pending_tasks(loop, self.tasks_before)
            problems += [f"task left pending: {t!r}" for t in tasks]
            with warnings.catch_warnings(record=True) as caught:
                # An "Unclosed client session" ResourceWarning raised as an error (filterwarnings =
                # error) would stop aiohttp before it reports to the loop: record it instead.
                warnings.simplefilter("always", ResourceWarning)
                gc.collect()
            # A report holds its session: name that session once, as reported.
            reported = {id(r.get("client_session") or r.get("connector")) for r in self.reports}
            problems += _describe_reports(self.reports)
            problems += [
                f"{w.category.__name__}: {w.message}"
                for w in caught
                if issubclass(w.category, ResourceWarning) and id(getattr(w, "source", None)) not in reported
            ]
            problems += [
                f"session left open: {s!r}"
                for s in _open_sessions()
                if s not in self.sessions_before and id(s) not in reported
            ]
            # Clean up, so that one leak fails one test only.
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            for session in _open_sessions():
                if session not in self.sessions_before and getattr(session, "_loop", None) is loop:
                    await session.close()
        finally:
            loop.set_exception_handler(self.previous_handler)
        return problems


@pytest.fixture(autouse=True)
def _asynctools_guard(request: pytest.FixtureRequest) -> Iterator[_Guard | None]:
    """For an async test: close ``default_registry`` on its loop afterwards, and check for leaks if asked.

    Set up before the test's other function-scoped fixtures and torn down after them, on the loop the
    test ran on (it holds pytest-asyncio's runner for the test's loop scope, so that loop is still open).
    Fails the test with ``pytest.fail`` listing the leaks when the leak check is on and finds any.
    """
    item = request.node
    # Asked for by option or ini, pytest_configure has already stopped the run: only a marker is left.
    if _UNSUPPORTED is not None and _leak_check_enabled(item):  # pragma: no cover
        pytest.fail(f"{item.nodeid} asks for the leak check, but {_UNSUPPORTED}", pytrace=False)
    if _is_async_test is None or not isinstance(item, pytest.Function) or not _is_async_test(item):
        yield None
        return
    try:
        runner = request.getfixturevalue(f"_{_loop_scope(item)}_scoped_runner")
    except pytest.FixtureLookupError:  # a pytest-asyncio that keeps its loops otherwise: stay out
        if _leak_check_enabled(item):  # pragma: no cover - a check asked for must not silently pass
            pytest.fail(
                f"{item.nodeid} asks for the asynctools leak check, which cannot reach this "
                f"pytest-asyncio's event loop (no fixture _{_loop_scope(item)}_scoped_runner)",
                pytrace=False,
            )
        yield None
        return
    guard = _Guard(runner=runner, check=_leak_check_enabled(item))
    guard.registries.append(("default_registry", default_registry))
    guard.start()
    yield guard
    problems = runner.run(guard.finish())
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        pytest.fail(f"asynctools leak check: {item.nodeid} left behind:\n{listing}", pytrace=False)


@pytest.fixture
def asynctools_registry(_asynctools_guard: _Guard | None) -> Iterator[SessionRegistry]:
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
    yield registry
