"""The ledger of a session's users (``Entry``) and one acquisition of it (``Lease``)."""

from __future__ import annotations

import asyncio
import traceback
from typing import TYPE_CHECKING, Protocol

from aiohttp import ClientSession

from ._diagnostics import report_unreleased
from ._keys import SessionKey

if TYPE_CHECKING:
    from ._idle import IdleSet

__all__ = ("Entry", "HeldLease", "Lease", "LeaseHolder", "released_twice")


def released_twice(what: str) -> ValueError:
    """The error for *what* (a session) given back more times than it was taken."""
    return ValueError(f"{what} was released more times than it was acquired; release each acquisition once")


class LeaseHolder(Protocol):
    """What an ``Entry`` reports to: the pool that handed its session out."""

    def release_entry(self, entry: Entry) -> asyncio.Task[None] | None:
        """One user of *entry* is gone (``entry.users`` is already counted down)."""

    def release_collected(self, entry: Entry, stack: traceback.StackSummary | None) -> None:
        """A lease of *entry* was garbage-collected unreleased; called from any thread."""


class Entry:
    """One session and the one count of its users, wherever they release from.

    ``pool`` is the pool that hands it out, ``None`` once that pool has closed it (or the process
    forked): releases then only count down. ``session`` is ``None`` once the session is closed or
    belongs to a parent process, so that nothing can hand it out again and the ledger does not keep it
    alive. ``raw`` holds the leases of ``registry.acquire()``, given back by ``registry.release()``.
    """

    __slots__ = ("__weakref__", "idle", "key", "loop", "pool", "raw", "session", "users")

    def __init__(
        self,
        key: SessionKey,
        session: ClientSession,
        pool: LeaseHolder,
        loop: asyncio.AbstractEventLoop,
        idle: IdleSet[Entry] | None = None,
    ) -> None:
        self.key = key
        self.loop = loop  # the loop the session belongs to
        self.idle = idle  # where it waits while nobody uses it (None: it is closed instead)
        self.session: ClientSession | None = session
        self.pool: LeaseHolder | None = pool
        self.users = 0
        self.raw: list[Lease] = []


class Lease:
    """One acquisition of a session: counted once by its pool, given back exactly once.

    ``release()`` gives it back (a second call raises ``ValueError``). A plain lease is for code that
    releases in a ``finally:`` (a decorated call); what may be dropped unreleased takes a ``HeldLease``.
    """

    __slots__ = ("__weakref__", "entry", "released", "stack")

    def __init__(self, entry: Entry, stack: traceback.StackSummary | None = None) -> None:
        self.entry = entry
        self.released = False
        self.stack = stack

    @property
    def session(self) -> ClientSession | None:
        """The session, or ``None`` once it is closed or inherited from a parent process."""
        return self.entry.session

    def release(self) -> asyncio.Task[None] | None:
        """Give the session back; return the task closing it, if this closes it.

        Must be called on the session's loop (``entry.loop``).
        Raises ``ValueError`` for a lease already released.
        """
        if self.released:
            raise released_twice("this session")
        self.released = True
        entry = self.entry
        entry.users -= 1
        pool = entry.pool
        if pool is None or entry.users:
            return None
        return pool.release_entry(entry)

    async def release_and_wait(self) -> None:
        """``release()``, then wait for the session to close if this closed it (shielded)."""
        closing = self.release()
        if closing is not None:
            await asyncio.shield(closing)


class HeldLease(Lease):
    """A lease kept by an object that may be dropped without releasing it (an attached container, a
    ``registry.session()`` lease, a response): collected unreleased, it is given back by its finaliser,
    on its loop, so that it is not counted in use forever.
    """

    __slots__ = ()

    def __del__(self) -> None:
        if self.released:
            return
        self.released = True
        entry = self.entry
        if entry.pool is not None:
            entry.pool.release_collected(entry, self.stack)
            return
        entry.users -= 1  # the registry closed the session already: only the count is left
        if self.stack is not None:
            report_unreleased(entry.key.origin_text(), [self.stack])
