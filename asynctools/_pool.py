"""The sessions one registry holds on one event loop: counted, kept idle, closed."""

from __future__ import annotations

import asyncio
import traceback
import warnings
from collections.abc import Callable
from typing import Protocol

from aiohttp import ClientRequest, ClientSession, CookieJar, TraceConfig
from yarl import URL

from ._closer import Closer
from ._connector import SharedConnector
from ._diagnostics import caller_stack, report_unreleased
from ._idle import IdleSet
from ._keys import Origin, SessionKey, origin_text
from ._lease import Entry, HeldLease, Lease
from ._metrics import SiteMetricsBook
from ._policy import SiteState, Spelling, policed_request_class, site_middleware, state_lookup
from ._shutdown import ShutdownHook
from ._site_policies import PolicyBook
from ._stats import RegistryStats, SessionStats

_get_running_loop = asyncio._get_running_loop  # the C accessor: None instead of an exception

__all__ = ("LoopPool", "PoolOwner")

# At shutdown, how long sessions still held wait for the tasks that may release them (generators
# finalised together with the hook, tasks a loop shut down without cancelling them still runs).
SHUTDOWN_GRACE = 10.0

# More open sessions than this for one origin, differing in an option compared by identity, are churn.
CHURN_LIMIT = 8


class PoolOwner(Protocol):
    """What a pool tells its registry."""

    def _adopt(self, entry: Entry) -> None:
        """A session was created: *entry* is its ledger."""

    def _forget(self, pool: LoopPool, *, loop_shut_down: bool) -> None:
        """The pool closed: it takes no new users."""

    def _site_policies(self) -> PolicyBook:
        """The policies of the registry's origins (the same book for the registry's lifetime)."""

    def _session_trace_configs(self) -> tuple[TraceConfig, ...]:
        """The trace configs every new session gets after the user's own (metrics)."""

    @property
    def metrics(self) -> SiteMetricsBook | None:
        """Per-site figures to count acquisitions in, if the registry keeps them."""


class LoopPool:
    """Reference-counted sessions of one ``SessionRegistry`` on one event loop.

    Only ever touched from its loop's thread (``release_collected`` excepted). A session lives in
    ``_entries`` from creation until it is closed with no users; ``_current`` names the session handed
    out for each key, in use or idle. An idle one stays there: ``_idle`` only says since when (isolated
    ones in ``_idle_isolated``, so per-user sessions never evict shared ones), so a release to zero and
    the next acquire cost a dict insertion and removal.

    The registry finds a pool by its loop until the pool is closed (``registry.close()`` or the loop
    shutting down); from then on its entries are detached: leases still held only count down.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        idle_timeout: float,
        max_idle: int,
        owner: PoolOwner,
        *,
        shut_down: bool = False,
        debug: bool = False,
    ) -> None:
        self.loop = loop
        self.debug = debug
        self.created = 0
        self.acquired = 0
        # Set once the loop shuts down: from then on a release closes at once instead of lingering,
        # since nothing will be left to close an idle session later.
        self.shut_down = shut_down
        self._owner = owner
        self._detached = False
        self._entries: dict[ClientSession, Entry] = {}
        self._current: dict[SessionKey, Entry] = {}
        # Idle entries stay in _current; these say since when (isolated ones apart, so that per-user
        # sessions never evict shared ones).
        self._idle: IdleSet[Entry] | None = None
        self._idle_isolated: IdleSet[Entry] | None = None
        if idle_timeout > 0 and max_idle > 0:
            self._idle = IdleSet(loop, max_idle, idle_timeout, self._drop)
            self._idle_isolated = IdleSet(loop, max_idle, idle_timeout, self._drop)
        self._closer = Closer(loop)
        # After the loop's shutdown nothing would close a shared connector: each session owns its own.
        metrics = owner.metrics
        self._connector = SharedConnector(
            lend=not shut_down, sites=None if metrics is None else metrics.lookup
        )
        # (origin, option) -> frozen value -> open sessions, for options compared by identity.
        self._churn: dict[tuple[object, str], dict[object, int]] = {}
        self._churn_warned: set[tuple[object, str]] = set()
        # Per origin with a policy, once a request went there: its limits and figures, shared by every
        # session of the origin on this loop.
        self._policies = owner._site_policies()
        self._sites: dict[Origin, SiteState] = {}
        # What the sessions' middleware found for each spelling of a request's site (None: no policy).
        # It reads the dict itself, so that a request's lookup is one dict read: the dict is only ever
        # cleared (whenever an answer may change), never replaced.
        self._spellings: dict[Spelling, SiteState | None] = {}
        self._middleware = site_middleware(self._spellings, self._site_state)
        self._state_of = state_lookup(self._spellings, self._site_state)
        # The request class of sessions built while policies exist, per the user's own request_class.
        self._policed: dict[type[ClientRequest], type[ClientRequest]] = {}
        self._site_metrics = owner.metrics  # per origin traffic figures, with metrics=True
        self._hook: ShutdownHook | None = None if shut_down else ShutdownHook(self._shutdown)

    # -- users -------------------------------------------------------------------------------------

    def lease(self, key: SessionKey, held: bool = False) -> Lease:
        """Count one more user of *key*'s session and return the lease, creating the session if needed.

        *held*: the lease is kept by an object that may be dropped unreleased (see ``HeldLease``).
        """
        entry = self._current.get(key)
        # A session we closed is None on its entry; one closed behind our back (the user's close(), or
        # their own connector's) must not be handed out again.
        if entry is None or (session := entry.session) is None or session.closed:
            entry = self._checkout(key)
        elif not entry.users and (idle := entry.idle) is not None:
            idle.pop(entry, None)  # idle: in use again
        entry.users += 1
        self.acquired += 1
        if self._site_metrics is not None and key.origin is not None:
            self._site_metrics.site(key.origin).count_acquisition()
        if self.debug:  # where it was acquired, for the report if it is never released
            return (HeldLease if held else Lease)(entry, caller_stack())
        return HeldLease(entry) if held else Lease(entry)

    def release_entry(self, entry: Entry) -> asyncio.Task[None] | None:
        """*entry* has no user left: keep it idle or close it."""
        loop = self.loop
        # Asking for the running loop first: it is this one on every release but the rarest.
        if _get_running_loop() is not loop and loop.is_closed():
            # Closed without shutting down: nothing can run on it any more.
            self.abandon()
            self._detach()
            return None
        idle, session = entry.idle, entry.session
        if (
            idle is None
            or self.shut_down
            or session is None
            or session.closed
            or self._current.get(entry.key) is not entry
        ):
            return self._drop(entry)
        idle.add(entry)  # may evict the session idle longest: it is dropped
        return None

    def release_collected(self, entry: Entry, stack: traceback.StackSummary | None) -> None:
        """A lease was collected unreleased (from any thread): count it down on the loop."""
        if self.loop.is_closed():
            entry.users -= 1
            return
        try:
            self.loop.call_soon_threadsafe(self._collected, entry, stack)
        except RuntimeError:  # the loop closed in between
            entry.users -= 1

    def _collected(self, entry: Entry, stack: traceback.StackSummary | None) -> None:
        entry.users -= 1
        if stack is not None:
            report_unreleased(entry.key.origin_text(), [stack], collected=True)
        if entry.users == 0 and entry.pool is self:
            self.release_entry(entry)

    def _checkout(self, key: SessionKey) -> Entry:
        stale = self._current.pop(key, None)
        if stale is not None and stale.users == 0:
            self._drop(stale)  # closed behind our back while idle; its in-use twins are dropped on release
        self._warn_of_churn(key)
        # Created before anything is counted: if aiohttp refuses the arguments, nothing changed.
        jar = None if key.isolation is None else key.isolation.cookie_jar(CookieJar)
        policed = bool(self._policies)
        session = self._connector.session(
            key,
            jar,
            (self._middleware,) if policed else (),
            self._owner._session_trace_configs(),
            self._request_class(key) if policed else None,
        )
        idle = self._idle if key.isolation is None else self._idle_isolated
        entry = Entry(key, session, self, self.loop, idle)
        self._entries[session] = entry
        self._count_identity_options(key, +1)
        self._owner._adopt(entry)
        self.created += 1
        self._current[key] = entry
        return entry

    # -- site policies -----------------------------------------------------------------------------

    def _site_state(self, origin: Origin) -> SiteState | None:
        """The state of *origin*, made at its first request, if it has a policy (the middleware asks
        once for each spelling of a site). ``None`` once the pool is closed: nothing would close it."""
        policy = self._policies.get(origin)
        if policy is None or self._detached:
            return None
        state = self._sites.get(origin)  # known under another spelling (a port written out, capitals)
        if state is None:
            state = self._sites[origin] = SiteState(policy, origin_text(origin))
        return state

    def _request_class(self, key: SessionKey) -> type[ClientRequest]:
        """The request class for a session of *key* while policies exist (see ``policed_request_class``)."""
        base = key.session_kwargs.get("request_class") or ClientRequest
        found = self._policed.get(base)
        if found is None:
            found = self._policed[base] = policed_request_class(base, self._site_of)
        return found

    def _site_of(self, url: URL) -> str | None:
        """The origin text of *url*'s site if it has a policy (for a request its policy never saw)."""
        state = self._state_of(url)
        return None if state is None else state.origin

    def policies_changed(self) -> None:
        """Sessions built so far lack the new policies: none is handed out again (those in use are
        dropped when released); the sites' lookups are made again."""
        self._spellings.clear()
        for idle in (self._idle, self._idle_isolated):
            if idle is not None:
                for entry in idle.drain():
                    self._drop(entry)
        self._current.clear()

    # -- closing -----------------------------------------------------------------------------------

    def _drop(self, entry: Entry) -> asyncio.Task[None] | None:
        """Forget *entry* and close its session; return the closing task, if one was needed."""
        if not entry.users and entry.idle is not None:
            entry.idle.pop(entry, None)
        if self._entries.pop(entry.session, None) is not None:  # type: ignore[arg-type]
            self._count_identity_options(entry.key, -1)
        if self._current.get(entry.key) is entry:
            del self._current[entry.key]
        return self._close(entry)

    def _close(self, entry: Entry) -> asyncio.Task[None] | None:
        """Close *entry*'s session and detach the entry from this pool (releases then only count down)."""
        session, entry.session, entry.pool = entry.session, None, None
        if session is None or session.closed:
            return None
        return self._closer.close(session.close)

    def close_all(self) -> list[asyncio.Task[None]]:
        """Detach from the registry and close every session, in use or idle; return the closing tasks.

        Leases still held are released later without error: their entries only count down.
        """
        self._detach()
        for idle in (self._idle, self._idle_isolated):
            if idle is not None:
                idle.drain()  # each of them is dropped below, with every other entry
        self._current.clear()
        entries = list(self._entries.values())
        self._entries.clear()
        self._churn.clear()
        # A lease still held is reported (debug mode) if it is dropped unreleased: a call in flight or
        # a generator finalised later may still release it. Sessions on the shared connector are closed
        # by closing it (see SharedConnector.close), the others one by one.
        closing = []
        lent = [e.session for e in entries if e.session is not None and self._connector.lends_to(e.session)]
        lent_ids = {id(session) for session in lent}
        close_connector = self._connector.close(lent)
        if close_connector is not None and (task := self._closer.close(close_connector)) is not None:
            closing.append(task)
        for entry in entries:
            if id(entry.session) in lent_ids:
                entry.session = entry.pool = None
            elif (task := self._close(entry)) is not None:
                closing.append(task)
        return closing

    async def close(self) -> None:
        """Close everything (see ``close_all``) and wait until it is closed.

        Cancelling the wait does not cancel the closing: the sessions still close.
        """
        self.close_all()
        await self._closer.wait()
        sites = list(self._sites.values())
        self._sites.clear()
        self._spellings.clear()
        for state in sites:
            await state.aclose()
        if self._hook is not None:
            hook, self._hook = self._hook, None
            await hook.cancel()

    def _detach(self) -> None:
        if not self._detached:
            self._detached = True
            self._owner._forget(self, loop_shut_down=self.shut_down)

    async def _shutdown(self) -> None:
        # Called by the loop's async-generator finalisation: every task is done, except those closing
        # other generators with us. While some user still holds a session, let those finish first: their
        # finally: blocks may still need it. Then close everything, closes cancelled at exit included.
        self.shut_down = True
        deadline = self.loop.time() + SHUTDOWN_GRACE
        while any(entry.users for entry in self._entries.values()):
            others = _other_tasks(self.loop)
            remaining = deadline - self.loop.time()
            if not others or remaining <= 0:
                break  # what is still held is held for good (a container never closed): close it
            await asyncio.wait(others, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        await self.close()

    def abandon(self, keep: Callable[[object], None] = lambda _: None) -> None:
        """Let go of everything without closing it: its loop is closed, or this is a forked child.

        In a forked child the sessions share their sockets with the parent, which still uses them:
        they are handed to *keep* (so that they are never collected and reported unclosed), never used
        nor closed here. Leases still held only count down from now on.
        """
        self._detached = True
        if self._hook is not None:
            self._hook.disarm()
        for idle in (self._idle, self._idle_isolated):
            if idle is not None:
                idle.drain()
        for entry in list(self._entries.values()):
            keep(entry.session)
            entry.session = entry.pool = None
        self._entries.clear()
        self._current.clear()
        self._connector.abandon(keep)

    # -- churn -------------------------------------------------------------------------------------

    def _count_identity_options(self, key: SessionKey, delta: int) -> None:
        for name, value in key.identity_options:
            counts = self._churn.setdefault((key.origin, name), {})
            counts[value] = counts.get(value, 0) + delta
            if counts[value] <= 0:
                del counts[value]

    def _warn_of_churn(self, key: SessionKey) -> None:
        """Warn once per origin and option when one more session would make it churn (before creating)."""
        for name, value in key.identity_options:
            marker = (key.origin, name)
            counts = self._churn.get(marker, {})
            if marker in self._churn_warned or value in counts or len(counts) < CHURN_LIMIT:
                continue
            self._churn_warned.add(marker)
            warnings.warn(
                f"asynctools: {len(counts) + 1} sessions for {key.origin_text()} differ only in the "
                f"{name!r} option, which is compared by identity: each new object makes a new session "
                f"and connection pool. Create the {name} value once and share it between containers "
                f"(a module-level function or object), or pass equal values",
                RuntimeWarning,
                stacklevel=5,
            )

    # -- inspection --------------------------------------------------------------------------------

    def session_counts(self) -> dict[Origin, tuple[int, int]]:
        """How many sessions are open, and how many of those idle, per origin (sessions without one
        apart). Safe to call from another thread."""
        counts: dict[Origin, tuple[int, int]] = {}
        # list(): one C-level copy, so that another thread (an exporter's) never sees the dict change.
        for session, entry in list(self._entries.items()):
            origin = entry.key.origin
            if origin is not None and not session.closed:
                open_, idle = counts.get(origin, (0, 0))
                counts[origin] = (open_ + 1, idle + (entry.users == 0))
        return counts

    def stats(self) -> RegistryStats:
        for idle in (self._idle, self._idle_isolated):
            if idle is not None:
                idle.expire()
        sessions = tuple(
            SessionStats(
                origin=entry.key.origin_text(),
                users=entry.users,
                idle=entry.users == 0 and not session.closed,
                closed=session.closed,
            )
            for session, entry in self._entries.items()
        )
        return RegistryStats(
            open=sum(not s.closed for s in sessions),
            in_use=sum(s.users > 0 and not s.closed for s in sessions),
            idle=sum(s.idle for s in sessions),
            created=self.created,
            acquired=self.acquired,
            sessions=sessions,
            sites=tuple(state.stats() for state in self._sites.values()),
        )


def _other_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[object]]:
    """The tasks of *loop* still running, but for the current one and ``shutdown_asyncgens()`` itself,
    which waits for the current one."""
    me = asyncio.current_task(loop)
    return [
        task
        for task in asyncio.all_tasks(loop)
        if task is not me and getattr(task.get_coro(), "__name__", "") != "shutdown_asyncgens"
    ]
