"""The sessions one registry holds on one event loop."""

from __future__ import annotations

import asyncio
import traceback
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import ClientSession

from ._diagnostics import caller_stack, report_unreleased
from ._idle import IdleSessions
from ._keys import SessionKey
from ._shared_connectors import SharedConnectors
from ._stats import RegistryStats, SessionStats

__all__ = ("LoopPool",)


class _Entry:
    """One session and how many users hold it."""

    __slots__ = ("__weakref__", "key", "session", "settling", "stacks", "users")

    def __init__(self, key: SessionKey, session: ClientSession) -> None:
        self.key = key
        self.session = session
        self.users = 0
        self.settling = False  # waiting for the end of the tick to go idle
        self.stacks: list[traceback.StackSummary] = []  # in debug mode: where each user acquired it


class PoolOwner(Protocol):
    """What a pool tells its registry."""

    def _adopt(self, session: ClientSession) -> None:
        """A session was created."""

    def _orphan(self, session: ClientSession, users: int, stacks: list[traceback.StackSummary]) -> None:
        """The pool detached while *users* still hold *session* (now closed); *stacks* say where."""

    def _forget(self, pool: LoopPool, *, loop_shut_down: bool) -> None:
        """The pool detached: it takes no new users."""


class LoopPool:
    """Reference-counted sessions of one ``SessionRegistry`` on one event loop.

    Only ever touched from its loop's thread. A session lives in ``_entries`` from creation until it is
    closed with no users; ``_current`` names the session handed out for each key; idle ones wait in
    ``_idle``. When a session's users drop to zero it goes idle at the end of the tick, not at once:
    a decorated call that is followed by another in the same tick then costs two dict look-ups instead
    of two cache updates.

    The registry finds a pool by its loop until the pool is closed (``registry.close()`` or the loop
    shutting down); from then on only the containers, calls and leases still holding one of its
    sessions reach it, to release. So a loop that has shut down is not kept alive by the registry.
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
        self._entries: dict[ClientSession, _Entry] = {}
        self._current: dict[SessionKey, _Entry] = {}
        self._idle: IdleSessions[SessionKey, _Entry] | None = None
        if idle_timeout > 0 and max_idle > 0:
            self._idle = IdleSessions(loop, max_idle, idle_timeout, self._drop)
        self._settling: list[_Entry] = []
        self._settle_handle: asyncio.Handle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._connectors = SharedConnectors(self._track)
        self._guard: asyncio.Task[None] | None = None
        if not shut_down:
            self._guard = loop.create_task(self._close_at_loop_shutdown(), name="asynctools-registry-guard")

    def __contains__(self, session: ClientSession) -> bool:
        return session in self._entries

    # -- users -------------------------------------------------------------------------------------

    def acquire(self, key: SessionKey) -> ClientSession:
        """Count one more user of *key*'s session and return it, creating it if needed."""
        entry = self._current.get(key)
        if entry is None or entry.session.closed:
            entry = self._checkout(key)
        entry.users += 1
        self.acquired += 1
        if self.debug:
            entry.stacks.append(caller_stack())
        return entry.session

    def release(self, session: ClientSession) -> asyncio.Task[None] | None:
        """Count one user less of *session*; return the task closing it, if this closes it.

        Raises ``ValueError``, changing nothing, for a session this pool did not hand out or one
        released more times than it was acquired.
        """
        entry = self._entries.get(session)
        if entry is None or entry.users == 0:
            raise ValueError(
                f"{session!r} was released more times than it was acquired; "
                "call release() once for each acquire()"
            )
        entry.users -= 1
        if entry.stacks:
            entry.stacks.pop()
        if entry.users:
            return None
        if (
            self._idle is None
            or self.shut_down
            or session.closed
            or self._current.get(entry.key) is not entry
        ):
            return self._drop(entry)
        if not entry.settling:
            entry.settling = True
            self._settling.append(entry)
            if self._settle_handle is None:
                self._settle_handle = self.loop.call_soon(self._settle)
        return None

    async def release_and_wait(self, session: ClientSession) -> None:
        """``release()``, then wait for the session to close if this closed it."""
        closing = self.release(session)
        if closing is not None:
            # Shielded: a caller cancelled while waiting still leaves the close running to the end.
            await asyncio.shield(closing)

    def _checkout(self, key: SessionKey) -> _Entry:
        stale = self._current.pop(key, None)
        if stale is not None and stale.users == 0:
            self._drop(stale)  # closed behind our back while idle; its in-use twins are dropped on release
        entry = None
        if self._idle is not None:
            entry = self._idle.take(key)
            if entry is not None and entry.session.closed:
                self._drop(entry)
                entry = None
        if entry is None:
            # Created before anything is counted: if aiohttp refuses the arguments, nothing changed.
            session = (
                ClientSession(**key.session_kwargs)
                if key.isolation is None
                else self._connectors.session(key)
            )
            entry = _Entry(key, session)
            self._entries[session] = entry
            self._owner._adopt(session)
            self.created += 1
        self._current[key] = entry
        return entry

    # -- idling ------------------------------------------------------------------------------------

    def _settle(self) -> None:
        self._settle_handle = None
        settling, self._settling = self._settling, []
        assert self._idle is not None
        for entry in settling:
            entry.settling = False
            if entry.users == 0 and self._current.get(entry.key) is entry:
                del self._current[entry.key]
                self._idle.add(entry.key, entry)  # may expire or evict others: they are dropped

    # -- closing -----------------------------------------------------------------------------------

    def _drop(self, entry: _Entry) -> asyncio.Task[None] | None:
        """Forget *entry* and close its session; return the closing task, if one was needed."""
        self._entries.pop(entry.session, None)
        if self._current.get(entry.key) is entry:
            del self._current[entry.key]
        closing = self._close(entry.session)
        if entry.key.isolation is not None:
            self._connectors.release(entry.key)
        return closing

    def _close(self, session: ClientSession) -> asyncio.Task[None] | None:
        if session.closed:
            return None
        return self._track(session.close)

    def _track(self, close: Callable[[], Awaitable[None]]) -> asyncio.Task[None] | None:
        """Run *close* in a task that ``close()`` and the loop's shutdown wait for."""
        if self.loop.is_closed():
            return None  # nothing can run any more: aiohttp reports what is left open

        async def wait() -> None:
            await close()

        task = self.loop.create_task(wait())
        self._closing.add(task)
        task.add_done_callback(self._closed)
        return task

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.loop.call_exception_handler(
                {
                    "message": "asynctools could not close a session",
                    "exception": task.exception(),
                    "task": task,
                }
            )

    def close_all(self) -> list[asyncio.Task[None]]:
        """Detach from the registry and close every session, in use or idle; return the closing tasks.

        Sessions still in use stay known here until their holders release them, so those releases
        succeed; the registry remembers them too, for ``registry.release()``.
        """
        self._detach()
        if self._settle_handle is not None:
            self._settle_handle.cancel()
            self._settle_handle = None
        if self._idle is not None:
            self._idle.drain()  # each of them is dropped below, with every other entry
        for entry in self._settling:
            entry.settling = False
        self._settling.clear()
        self._current.clear()
        for entry in list(self._entries.values()):
            if entry.users:
                self._owner._orphan(entry.session, entry.users, entry.stacks)
                if entry.stacks:
                    # Reported if still unreleased when the entry goes away: a paused generator
                    # finalised after the loop's shutdown, or a call still in flight, releases later.
                    weakref.finalize(entry, report_unreleased, entry.key.origin_text(), entry.stacks)
                self._close(entry.session)
            else:
                self._drop(entry)
        self._connectors.close_all()  # their sessions are all closed now
        return list(self._closing)

    async def close(self) -> None:
        """Close everything (see ``close_all``) and wait until it is closed.

        Cancelling the wait does not cancel the closing: the sessions still close.
        """
        await asyncio.shield(asyncio.gather(*self.close_all()))
        if self._guard is not None and self._guard is not asyncio.current_task():
            await asyncio.wait([self._guard])

    def _detach(self) -> None:
        if self._detached:
            return
        self._detached = True
        self._owner._forget(self, loop_shut_down=self.shut_down)
        if self._guard is not None and self._guard is not asyncio.current_task(self.loop):
            self._guard.cancel()

    async def _close_at_loop_shutdown(self) -> None:
        # asyncio.run() (and aiohttp's run_app) cancel every task left when the main coroutine ends and
        # wait for them; paused async generators are closed only after that. So this waits for the
        # cancellation, closes what the registry holds, and makes later releases close at once.
        # A loop closed without cancelling its tasks (run_until_complete() then close()) destroys this
        # task instead, and asyncio says so: such code must await registry.close() before loop.close().
        try:
            await self.loop.create_future()
        except asyncio.CancelledError:
            if not self._detached:
                self.shut_down = True
                await self.close()
            raise

    # -- inspection --------------------------------------------------------------------------------

    def stats(self) -> RegistryStats:
        if self._idle is not None:
            self._idle.expire()
        sessions = tuple(
            SessionStats(
                origin=entry.key.origin_text(),
                users=entry.users,
                idle=entry.users == 0 and not entry.session.closed,
                closed=entry.session.closed,
            )
            for entry in self._entries.values()
        )
        return RegistryStats(
            open=sum(not s.closed for s in sessions),
            in_use=sum(s.users > 0 and not s.closed for s in sessions),
            idle=sum(s.idle for s in sessions),
            created=self.created,
            acquired=self.acquired,
            sessions=sessions,
        )
