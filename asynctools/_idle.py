"""Sessions nobody uses, kept warm for a while: marked idle in place, oldest first, on the loop's clock."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ("IdleSet",)

V = TypeVar("V")


class IdleSet(Generic[V]):
    """Values nobody uses: at most *maxsize* (the one idle longest out first), each for *ttl* seconds of
    *loop*'s clock; every value that leaves by expiry or eviction goes to *on_drop*.

    A value stays where its owner keeps it (the pool's current session per key); only its entry here
    says since when it is idle. Going idle and back is then a dict insertion and removal: moving a
    session into a ``cachetools.TTLCache`` and out again on every release cost ~13 µs, more than the
    rest of an unattached call. Insertion order is idle order (a value is removed when taken back), so
    the oldest is always first, and one timer on the loop expires them on time.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, maxsize: int, ttl: float, on_drop: Callable[[V], object]
    ) -> None:
        self._loop = loop
        self._maxsize = maxsize
        self._ttl = ttl
        self._on_drop = on_drop
        self._since: dict[V, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._since)

    def add(self, value: V) -> None:
        """*value* goes idle now; may evict the value idle longest (handed to *on_drop*)."""
        now = self._loop.time()
        self._since[value] = now
        if len(self._since) > self._maxsize:
            oldest = next(iter(self._since))
            del self._since[oldest]
            self._on_drop(oldest)
        if self._timer is None:
            self._schedule(now + self._ttl)

    def discard(self, value: V) -> None:
        """*value* is in use again (nothing happens if it was not idle)."""
        self._since.pop(value, None)

    def expire(self, now: float | None = None) -> None:
        """Drop the values idle for *ttl* seconds or more by *now* (default: the loop's time)."""
        if now is None:
            now = self._loop.time()
        deadline = now - self._ttl
        while self._since:
            oldest, since = next(iter(self._since.items()))
            if since > deadline:
                break
            del self._since[oldest]
            self._on_drop(oldest)

    def drain(self) -> list[V]:
        """Stop the timer and empty out every value, without handing any to *on_drop*."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        drained = list(self._since)
        self._since.clear()
        return drained

    def _schedule(self, when: float) -> None:
        # In a context of its own: the caller's (and what its ContextVars hold) is not kept alive.
        self._timer = self._loop.call_at(when, self._on_timer, when, context=contextvars.Context())

    def _on_timer(self, when: float) -> None:
        self._timer = None
        # call_at may fire up to one clock resolution early: expire as of the time it was meant for.
        self.expire(max(self._loop.time(), when))
        if self._since:
            self._schedule(next(iter(self._since.values())) + self._ttl)
