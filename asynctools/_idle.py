"""Sessions nobody uses, kept warm for a while: marked idle in place, oldest first, on the loop's clock."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ("IdleSet",)

V = TypeVar("V")


class IdleSet(dict[V, float]):
    """Values nobody uses: at most *maxsize* (the one idle longest out first), each for *ttl* seconds of
    *loop*'s clock; every value that leaves by expiry or eviction goes to *on_drop*.

    A value stays where its owner keeps it (the pool's current session per key); only its entry here
    says since when it is idle. Going idle and back is then a dict insertion and removal: moving a
    session into a ``cachetools.TTLCache`` and out again on every release cost ~13 µs, more than the
    rest of an unattached call. Insertion order is idle order (a value is removed when taken back), so
    the oldest is always first, and one timer on the loop expires them on time.

    It is the dict itself (value -> since when), so that taking a value back (in use again, or dropped)
    is ``pop(value, None)``, a C call, rather than a Python method around it.
    """

    __slots__ = ("_loop", "_maxsize", "_on_drop", "_time", "_timer", "_ttl")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, maxsize: int, ttl: float, on_drop: Callable[[V], object]
    ) -> None:
        super().__init__()
        self._loop = loop
        self._maxsize = maxsize
        self._ttl = ttl
        self._on_drop = on_drop
        self._timer: asyncio.TimerHandle | None = None
        # asyncio's own loops tell the time with a Python method around time.monotonic(): read the
        # clock directly, since add() reads it on every release. Other loops (uvloop, a test's fake
        # clock) are asked.
        self._time: Callable[[], float] = (
            time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        )

    def add(self, value: V) -> None:
        """*value* goes idle now; may evict the value idle longest (handed to *on_drop*)."""
        now = self._time()
        self[value] = now
        if len(self) > self._maxsize:
            oldest = next(iter(self))
            del self[oldest]
            self._on_drop(oldest)
        if self._timer is None:
            self._schedule(now + self._ttl)

    def expire(self, now: float | None = None) -> None:
        """Drop the values idle for *ttl* seconds or more by *now* (default: the loop's time)."""
        if now is None:
            now = self._loop.time()
        deadline = now - self._ttl
        while self:
            oldest, since = next(iter(self.items()))
            if since > deadline:
                break
            del self[oldest]
            self._on_drop(oldest)

    def drain(self) -> list[V]:
        """Stop the timer and empty out every value, without handing any to *on_drop*."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        drained = list(self)
        self.clear()
        return drained

    def _schedule(self, when: float) -> None:
        # In a context of its own: the caller's (and what its ContextVars hold) is not kept alive.
        self._timer = self._loop.call_at(when, self._on_timer, when, context=contextvars.Context())

    def _on_timer(self, when: float) -> None:
        self._timer = None
        # call_at may fire up to one clock resolution early: expire as of the time it was meant for.
        self.expire(max(self._loop.time(), when))
        if self:
            self._schedule(next(iter(self.values())) + self._ttl)
