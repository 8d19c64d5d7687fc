"""SessionRegistry: shared, reference-counted ``ClientSession``s, one per site and options, per loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import threading
import weakref
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

from aiohttp import ClientSession, TraceConfig

from ._keys import Origin, SessionKey, make_key
from ._lease import Entry, Lease, released_twice
from ._metrics import SiteMetricsBook, metrics_trace_config
from ._policy import SitePolicy
from ._pool import LoopPool
from ._redact import redact_repr
from ._site_policies import PolicyBook
from ._stats import RegistryStats

__all__ = ("SessionRegistry", "default_registry")

_running_loop = asyncio._get_running_loop  # None outside a loop, instead of an exception


class SessionRegistry:
    """Hands out one shared ``aiohttp.ClientSession`` per event loop, site and session options.

    Sessions are keyed by the running loop, the URL's origin (scheme, host, port) and the
    ``ClientSession`` keyword arguments. Each ``acquire()`` counts a user and each ``release()`` one
    less; a session nobody uses is kept warm for *idle_timeout* seconds (at most *max_idle* of them,
    the one idle longest closed first, and as many again of ``isolate_cookies=True`` containers, kept
    apart so that per-user sessions never evict shared ones) and then closed; every session borrows
    the loop's one connection pool, so closing an idle session leaves its warm connections for the
    next. ``idle_timeout=0`` closes it at once. When the loop shuts down (``asyncio.run()`` returning,
    ``web.run_app`` stopping), everything the registry holds for that loop is closed. Constructing a
    registry needs no event loop; one registry may serve several threads, each with its own loop.

    With *debug* (or in asyncio's debug mode, ``python -X dev``), each acquisition records where it was
    made, and one never released is reported as a ``ResourceWarning`` with that traceback when what
    holds it (a container, a lease, a session from ``acquire()``) is garbage-collected.

    With *metrics*, every session it builds also reports to the registry's own ``TraceConfig`` (yours
    still run): per site, requests, responses by status class, errors, connections opened and reused,
    time queued for a connection, DNS lookups and cache hits, latency p50/p99, in ``stats().metrics``
    and, with the ``otel`` extra, through OpenTelemetry (``asynctools.otel.instrument(registry)``). Off by
    default: aiohttp's tracing costs several percent per request (see the docs' performance page).

    *policies* maps site URLs to the ``SitePolicy`` (retries, rate and concurrency limits) every request
    to that origin obeys; see ``set_policy()``.

    Raises ``TypeError`` or ``ValueError`` for an *idle_timeout* that is not a finite number >= 0, a
    *max_idle* that is not an int >= 0, *policies* that are not a mapping (``TypeError``), or a bad or
    conflicting policy (see ``set_policy()``).

        registry = SessionRegistry(idle_timeout=30)

        async with registry.session("https://api.example.com") as session:
            async with session.get("https://api.example.com/items") as resp:
                items = await resp.json()
    """

    def __init__(
        self,
        *,
        idle_timeout: float = 15.0,
        max_idle: int = 1024,
        debug: bool = False,
        policies: Mapping[Any, SitePolicy] | None = None,
        metrics: bool = False,
    ) -> None:
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
            raise TypeError(f"idle_timeout must be a number of seconds, not {idle_timeout!r}")
        if not (math.isfinite(idle_timeout) and idle_timeout >= 0):
            raise ValueError(f"idle_timeout must be a finite number of seconds >= 0, not {idle_timeout!r}")
        if isinstance(max_idle, bool) or not isinstance(max_idle, int):
            raise TypeError(f"max_idle must be an int, not {max_idle!r}")
        if max_idle < 0:
            raise ValueError(f"max_idle must be >= 0 (0 keeps no idle session), not {max_idle!r}")
        if policies is not None and not isinstance(policies, Mapping):
            raise TypeError(
                f"policies must be a mapping of site URL -> SitePolicy, such as "
                f"{{'https://api.example.com': SitePolicy(...)}}, or None; got a {type(policies).__name__}: "
                f"{redact_repr(policies)}"
            )
        book = PolicyBook()
        for url, policy in (policies or {}).items():
            book.state(url, policy)
        self._policies = book
        #: Per-site figures from aiohttp's tracing (``metrics=True``), else ``None``; see ``stats()``.
        self.metrics: SiteMetricsBook | None = SiteMetricsBook() if metrics else None
        self._trace_configs: tuple[TraceConfig, ...] = ()
        if self.metrics is not None:
            self._trace_configs = (metrics_trace_config(self.metrics.lookup),)
            self.metrics.count_sessions_with(self._session_counts)
        self._idle_timeout = float(idle_timeout)
        self._max_idle = max_idle
        self._debug = bool(debug)
        self._pools: dict[asyncio.AbstractEventLoop, LoopPool] = {}
        self._lock = threading.Lock()  # guards what follows against threads that each run a loop
        # The one ledger: each session this registry made, to its Entry (which counts its users).
        # Weak: an entry drops its session once closed, so a session nobody holds is not kept alive.
        self._ledger: weakref.WeakKeyDictionary[ClientSession, Entry] = weakref.WeakKeyDictionary()
        self._shut_down_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        _registries.add(self)

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

    # -- site policies ------------------------------------------------------------------------------

    def set_policy(self, url: Any, policy: SitePolicy) -> None:
        """Make every request to *url*'s origin through this registry's sessions obey *policy*.

        It applies whatever the other session options are, counted across every session of that origin
        on a loop, to the sessions acquired from then on: a container attached before keeps its session,
        built without the policy, until it is detached. State policies before first use.

        Raises ``TypeError`` for a *policy* that is not a ``SitePolicy`` or a *url* that is not a str or
        URL, ``ValueError`` for a bad *url* or when the origin already has another policy (an equal one
        is accepted). Nothing changes when it raises.

            registry.set_policy("https://api.github.com", SitePolicy(rate=RateLimit(5000, per=3600)))
        """
        if not self._policies.state(url, policy):
            return  # the same policy again
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            if pool.loop is _running_loop():
                pool.policies_changed()
            elif not pool.loop.is_closed():
                pool.loop.call_soon_threadsafe(pool.policies_changed)

    def _session_counts(self) -> dict[Origin, tuple[int, int]]:
        """Open and idle sessions per origin over every loop the registry serves (from any thread: an
        exporter's collection runs in its own)."""
        with self._lock:
            pools = list(self._pools.values())
        counts: dict[Origin, tuple[int, int]] = {}
        for pool in pools:
            for origin, (open_, idle) in pool.session_counts().items():
                was_open, was_idle = counts.get(origin, (0, 0))
                counts[origin] = (was_open + open_, was_idle + idle)
        return counts

    def _site_policies(self) -> PolicyBook:
        return self._policies

    def _session_trace_configs(self) -> tuple[TraceConfig, ...]:
        return self._trace_configs

    # -- the pool of the running loop ---------------------------------------------------------------

    def _lease(self, key: SessionKey, held: bool = False) -> Lease:
        """Lease *key*'s session on the running loop (``RuntimeError`` without one): the way in for
        containers, decorated calls and ``session()``. *held*: see ``LoopPool.lease``."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._open_pool(loop)
        return pool.lease(key, held)

    def _open_pool(self, loop: asyncio.AbstractEventLoop) -> LoopPool:
        with self._lock:
            if loop in self._shut_down_loops:
                # An async generator finalised after the shutdown: serve it, but keep nothing, since
                # nothing can be left behind to close a lingering session any more.
                return LoopPool(loop, self._idle_timeout, self._max_idle, self, shut_down=True, debug=False)
            # A loop closed without shutting down never detached its pool: drop it here, so that a
            # dead loop is not kept alive by the registry.
            for dead in [other for other in self._pools if other.is_closed()]:
                self._pools.pop(dead).abandon()
            debug = self._debug or loop.get_debug()
            pool = self._pools[loop] = LoopPool(loop, self._idle_timeout, self._max_idle, self, debug=debug)
        return pool

    def _adopt(self, entry: Entry) -> None:
        assert entry.session is not None
        with self._lock:
            self._ledger[entry.session] = entry

    def _forget(self, pool: LoopPool, *, loop_shut_down: bool) -> None:
        with self._lock:
            if self._pools.get(pool.loop) is pool:
                del self._pools[pool.loop]
            if loop_shut_down:
                self._shut_down_loops.add(pool.loop)

    def _after_fork_in_child(self) -> None:
        # The parent's sessions share their sockets with the parent: never use them here, and never
        # close them (closing would shut the parent's connections); keep them referenced so that
        # aiohttp does not call them unclosed when they would be collected.
        self._lock = threading.Lock()  # another thread may have held it at the fork
        for pool in self._pools.values():
            pool.abandon(keep=_inherited.append)
        self._pools.clear()
        self._shut_down_loops = weakref.WeakSet()

    # -- acquire and release ------------------------------------------------------------------------

    async def acquire(self, url: Any = None, **session_kwargs: Any) -> ClientSession:
        """Return the shared session for *url*'s origin and *session_kwargs*, counting one user.

        The session is created on first use, on the running loop; every call must be paired with one
        ``release()``. *url* is a ``str`` or ``yarl.URL`` (only its origin matters) or ``None`` for a
        session not tied to a site. The options are copied: changing your dicts afterwards changes
        nothing.

        Raises ``TypeError`` for a *url* of another type or a keyword ``ClientSession`` does not take,
        ``ValueError`` for a URL with no host, a host with characters no host name may contain, or a
        scheme other than http, https, ws, wss; nothing is created or counted then.
        """
        # Held: once the registry has closed the session, a user dropping it without release() drops
        # these leases too, which then say so in debug mode.
        lease = self._lease(make_key(url, session_kwargs), True)
        lease.entry.raw.append(lease)
        session = lease.session
        assert session is not None
        return session

    async def release(self, session: ClientSession) -> None:
        """Count one user less of *session*; if it was the last, keep it idle or close it.

        Waits for the session to close when it is closed (``idle_timeout=0``, or the loop shutting
        down). Raises ``TypeError`` for something that is not a ``ClientSession`` and ``ValueError`` for
        a session this registry did not hand out, one released more times than it was acquired (also
        after ``close()`` or the loop's shutdown) or one whose loop is another, still running, loop;
        nothing changes then.
        """
        if not isinstance(session, ClientSession):
            raise TypeError(f"release() takes a ClientSession from acquire(), not {session!r}")
        with self._lock:
            entry = self._ledger.get(session)
        if entry is None:
            raise ValueError(
                f"{session!r} was not handed out by this registry; "
                "release only sessions that this registry's acquire() returned"
            )
        loop = entry.loop
        if loop is not asyncio.get_running_loop() and not loop.is_closed():
            raise ValueError(
                f"{session!r} belongs to another event loop, which is still running; release it on the "
                "loop that acquired it"
            )
        with self._lock:
            lease = entry.raw.pop() if entry.raw else None
        if lease is None:
            raise released_twice(repr(session))
        await lease.release_and_wait()

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
        stats = (
            RegistryStats(open=0, in_use=0, idle=0, created=0, acquired=0, sessions=())
            if pool is None
            else pool.stats()
        )
        if self.metrics is None:
            return stats
        per_site = {} if pool is None else pool.session_counts()
        for site in self.metrics.sites():
            open_, idle = per_site.get(site.origin, (0, 0))
            site.set_sessions(open=open_, idle=idle)
        return dataclasses.replace(stats, metrics=self.metrics.snapshot())


class SessionLease:
    """``async with registry.session(...) as session``: one acquire, one release.

    Dropped while entered (never exited), it is released when collected.
    """

    __slots__ = ("_key", "_lease", "_registry")

    def __init__(self, registry: SessionRegistry, key: SessionKey) -> None:
        self._registry = registry
        self._key = key
        self._lease: Lease | None = None

    async def __aenter__(self) -> ClientSession:
        if self._lease is not None:
            raise RuntimeError("this registry.session(...) is already entered; call registry.session() again")
        self._lease = self._registry._lease(self._key, True)
        session = self._lease.session
        assert session is not None
        return session

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._lease is not None
        lease, self._lease = self._lease, None
        await lease.release_and_wait()


_registries: weakref.WeakSet[SessionRegistry] = weakref.WeakSet()
# What a forked child inherited from its parent's registries: kept, never used nor closed.
_inherited: list[object] = []


def _after_fork_in_child() -> None:
    for registry in list(_registries):
        registry._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)

#: The process-wide registry that containers use unless they are given another.
default_registry = SessionRegistry()
