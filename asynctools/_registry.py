"""SessionRegistry: shared, reference-counted ``ClientSession``s, one per site and options, per loop."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import traceback
import weakref
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiohttp import ClientSession

from ._keys import SessionKey, make_key
from ._pool import LoopPool
from ._stats import RegistryStats

__all__ = ("SessionRegistry", "default_registry")


class SessionRegistry:
    """Hands out one shared ``aiohttp.ClientSession`` per event loop, site and session options.

    Sessions are keyed by the running loop, the URL's origin (scheme, host, port) and the
    ``ClientSession`` keyword arguments. Each ``acquire()`` counts a user and each ``release()`` one
    less; a session nobody uses is kept warm for *idle_timeout* seconds (at most *max_idle* of them,
    least recently used closed first) and then closed. ``idle_timeout=0`` closes it at once. When the
    loop shuts down (``asyncio.run()`` returning, ``web.run_app`` stopping), everything the registry
    holds for that loop is closed. Constructing a registry needs no event loop; one registry may serve
    several threads, each with its own loop.

    With *debug* (or in asyncio's debug mode, ``python -X dev``), each acquisition records where it was
    made, and ``close()`` or the loop's shutdown report those never released as a ``ResourceWarning``
    with that traceback.

    Raises ``TypeError`` or ``ValueError`` for an *idle_timeout* that is not a finite number >= 0 or a
    *max_idle* that is not an int >= 0.

        registry = SessionRegistry(idle_timeout=30)

        async with registry.session("https://api.example.com") as session:
            async with session.get("https://api.example.com/items") as resp:
                items = await resp.json()
    """

    def __init__(self, *, idle_timeout: float = 15.0, max_idle: int = 64, debug: bool = False) -> None:
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
            raise TypeError(f"idle_timeout must be a number of seconds, not {idle_timeout!r}")
        if not (math.isfinite(idle_timeout) and idle_timeout >= 0):
            raise ValueError(f"idle_timeout must be a finite number of seconds >= 0, not {idle_timeout!r}")
        if isinstance(max_idle, bool) or not isinstance(max_idle, int):
            raise TypeError(f"max_idle must be an int, not {max_idle!r}")
        if max_idle < 0:
            raise ValueError(f"max_idle must be >= 0 (0 keeps no idle session), not {max_idle!r}")
        self._idle_timeout = float(idle_timeout)
        self._max_idle = max_idle
        self._debug = bool(debug)
        self._pools: dict[asyncio.AbstractEventLoop, LoopPool] = {}
        self._lock = threading.Lock()  # guards what follows against threads that each run a loop
        # Weak: neither may keep a session, and so its loop, alive.
        self._handed_out: weakref.WeakSet[ClientSession] = weakref.WeakSet()
        # Sessions closed while still held: how many users, and (debug mode) where they acquired.
        self._orphans: weakref.WeakKeyDictionary[ClientSession, tuple[int, list[traceback.StackSummary]]] = (
            weakref.WeakKeyDictionary()
        )
        self._shut_down_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def __repr__(self) -> str:
        return (
            f"<SessionRegistry idle_timeout={self._idle_timeout} max_idle={self._max_idle} "
            f"loops={len(self._pools)}>"
        )

    @property
    def idle_timeout(self) -> float:
        """Seconds an unused session is kept open for the next user."""
        return self._idle_timeout

    @property
    def max_idle(self) -> int:
        """How many unused sessions are kept open at most, per loop."""
        return self._max_idle

    # -- the pool of the running loop ---------------------------------------------------------------

    def _pool(self) -> LoopPool:
        """The pool of the running loop, created on first use (raises ``RuntimeError`` with no loop)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._open_pool(loop)
        return pool

    def _open_pool(self, loop: asyncio.AbstractEventLoop) -> LoopPool:
        with self._lock:
            if loop in self._shut_down_loops:
                # An async generator finalised after the shutdown: serve it, but keep nothing, since
                # no task can be left behind to close a lingering session any more.
                return LoopPool(loop, self._idle_timeout, self._max_idle, self, shut_down=True, debug=False)
            # A loop closed without shutting down never detached its pool: drop it here, so that a
            # dead loop is not kept alive by the registry.
            for dead in [other for other in self._pools if other.is_closed()]:
                del self._pools[dead]
            debug = self._debug or loop.get_debug()
            pool = self._pools[loop] = LoopPool(loop, self._idle_timeout, self._max_idle, self, debug=debug)
        return pool

    def _adopt(self, session: ClientSession) -> None:
        with self._lock:
            self._handed_out.add(session)

    def _orphan(self, session: ClientSession, users: int, stacks: list[traceback.StackSummary]) -> None:
        with self._lock:
            self._orphans[session] = (users, stacks)

    def _forget(self, pool: LoopPool, *, loop_shut_down: bool) -> None:
        with self._lock:
            if self._pools.get(pool.loop) is pool:
                del self._pools[pool.loop]
            if loop_shut_down:
                self._shut_down_loops.add(pool.loop)

    # -- acquire and release ------------------------------------------------------------------------

    async def acquire(self, url: Any = None, **session_kwargs: Any) -> ClientSession:
        """Return the shared session for *url*'s origin and *session_kwargs*, counting one user.

        The session is created on first use, on the running loop; every call must be paired with one
        ``release()``. *url* is a ``str`` or ``yarl.URL`` (only its origin matters) or ``None`` for a
        session not tied to a site.

        Raises ``TypeError`` for a *url* of another type or a keyword ``ClientSession`` does not take,
        ``ValueError`` for a URL with no host or a scheme other than http, https, ws, wss; nothing is
        created or counted then.
        """
        return self._pool().acquire(make_key(url, session_kwargs))

    async def release(self, session: ClientSession) -> None:
        """Count one user less of *session*; if it was the last, keep it idle or close it.

        Waits for the session to close when it is closed (``idle_timeout=0``, or the loop shutting
        down). Raises ``TypeError`` for something that is not a ``ClientSession`` and ``ValueError`` for
        a session this registry did not hand out on this loop or one released more times than it was
        acquired; nothing changes then.
        """
        if not isinstance(session, ClientSession):
            raise TypeError(f"release() takes a ClientSession from acquire(), not {session!r}")
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is not None and session in pool:
            await pool.release_and_wait(session)
            return
        with self._lock:
            users, stacks = self._orphans.get(session, (0, []))
            if users:  # closed by close() or the loop's shutdown while still in use: already closed
                self._orphans[session] = (users - 1, stacks)
                if stacks:
                    stacks.pop()
                return
        if session in self._handed_out:
            raise ValueError(
                f"{session!r} was released more times than it was acquired (or on another event loop); "
                "call release() once for each acquire(), on the loop that acquired it"
            )
        raise ValueError(
            f"{session!r} was not handed out by this registry; "
            "release only sessions that this registry's acquire() returned"
        )

    def session(self, url: Any = None, **session_kwargs: Any) -> SessionLease:
        """Return an async context manager that acquires on entry and releases on exit.

        Arguments as for ``acquire()``; bad ones raise here, before anything is acquired.

            async with registry.session("https://api.example.com", raise_for_status=True) as session:
                ...
        """
        return SessionLease(self, make_key(url, session_kwargs))

    # -- closing ------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every session this registry holds on the running loop, in use or idle, and wait.

        The registry stays usable: a later ``acquire()`` creates fresh sessions. Users still holding a
        session may release it afterwards without error. Counters in ``stats()`` start again from zero.
        """
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> SessionRegistry:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def cleanup_ctx(self, app: object) -> AsyncIterator[None]:
        """Tie the registry to an aiohttp.web application: ``app.cleanup_ctx.append(registry.cleanup_ctx)``.

        Nothing happens on start-up; on clean-up every session of the app's loop is closed.
        """
        yield
        await self.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Tie the registry to a Starlette or FastAPI application: ``Starlette(lifespan=registry.lifespan)``.

        Nothing happens on start-up; at shutdown every session of the app's loop is closed. Inside a
        lifespan of your own, nest it: ``async with registry.lifespan(app): yield``.
        """
        try:
            yield
        finally:
            await self.close()

    def stats(self) -> RegistryStats:
        """Return a snapshot of the sessions held on the running loop (see ``RegistryStats``).

        Raises ``RuntimeError`` when called without a running event loop.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "stats() reports on the running event loop; call it from a coroutine"
            ) from None
        pool = self._pools.get(loop)
        if pool is None:
            return RegistryStats(open=0, in_use=0, idle=0, created=0, acquired=0, sessions=())
        return pool.stats()


class SessionLease:
    """``async with registry.session(...) as session``: one acquire, one release."""

    __slots__ = ("_key", "_pool", "_registry", "_session")

    def __init__(self, registry: SessionRegistry, key: SessionKey) -> None:
        self._registry = registry
        self._key = key
        self._pool: LoopPool | None = None
        self._session: ClientSession | None = None

    async def __aenter__(self) -> ClientSession:
        if self._session is not None:
            raise RuntimeError("this registry.session(...) is already entered; call registry.session() again")
        self._pool = self._registry._pool()
        self._session = self._pool.acquire(self._key)
        return self._session

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._pool is not None and self._session is not None
        pool, session = self._pool, self._session
        self._pool = self._session = None
        await pool.release_and_wait(session)


#: The process-wide registry that containers use unless they are given another.
default_registry = SessionRegistry()
