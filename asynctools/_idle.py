"""Sessions nobody uses, kept warm for a while: a TTL + LRU cache that never drops one silently."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cachetools import TTLCache

__all__ = ("IdleCache", "IdleSessions")

K = TypeVar("K")
V = TypeVar("V")


class IdleCache(TTLCache[K, V]):
    """``cachetools.TTLCache`` that hands every value it drops to *on_drop*.

    ``TTLCache`` expires values inside ``__setitem__``, ``__len__`` and friends and evicts the least
    recently used one in ``popitem`` without telling anybody; a session dropped that way would never be
    closed. Both paths go through ``expire()`` and ``popitem()``, so those two are the hooks
    (``expire()`` returns what it dropped since cachetools 5.5, hence that lower bound).
    """

    def __init__(
        self, maxsize: int, ttl: float, timer: Callable[[], float], on_drop: Callable[[V], object]
    ) -> None:
        super().__init__(maxsize, ttl, timer)
        self._on_drop = on_drop

    def expire(self, time: Any = None) -> list[tuple[K, V]]:
        expired = list(super().expire(time))
        for _, value in expired:
            self._on_drop(value)
        return expired

    def popitem(self) -> tuple[K, V]:
        key, value = super().popitem()
        self._on_drop(value)
        return key, value

    def drain(self) -> list[V]:
        """Empty the cache and return every value it held, expired or not, instead of dropping them.

        ``clear()`` is no way to do this: up to cachetools 7 it empties the cache through ``expire()`` and
        ``popitem()``, handing each value to *on_drop*; from 8 on it drops them silently.
        """
        drained: list[V] = []
        on_drop, self._on_drop = self._on_drop, drained.append
        try:
            self.expire()
            while True:
                self.popitem()
        except KeyError:  # empty
            return drained
        finally:
            self._on_drop = on_drop


class IdleSessions(Generic[K, V]):
    """Values by key that nobody uses: at most *maxsize* (least recently added out first), each for
    *ttl* seconds of *loop*'s clock; every value that leaves by expiry or eviction goes to *on_drop*.

    ``TTLCache`` only expires when it is next touched, so a timer on the loop expires values on time:
    otherwise an idle session would stay open until the registry happened to be used again.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, maxsize: int, ttl: float, on_drop: Callable[[V], object]
    ) -> None:
        self._loop = loop
        self._ttl = ttl
        # Each value is stored with the time it went idle, to know when the next one expires.
        self._cache: IdleCache[K, tuple[V, float]] = IdleCache(
            maxsize, ttl, loop.time, lambda item: on_drop(item[0])
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0

    def add(self, key: K, value: V) -> None:
        """Keep *value* idle under *key*; may expire or evict others (they go to *on_drop*)."""
        self._cache[key] = (value, self._loop.time())
        self._schedule()

    def take(self, key: K) -> V | None:
        """Take back *key*'s value if it is still there and has not expired."""
        self._cache.expire()
        item = self._cache.pop(key, None)
        return None if item is None else item[0]

    def expire(self, time: float | None = None) -> None:
        """Drop the values expired by *time* (default: now)."""
        self._cache.expire(time)

    def drain(self) -> list[V]:
        """Stop the timer and empty out every value, without handing any to *on_drop*."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return [value for value, _ in self._cache.drain()]

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        # One time for both steps: the cache hides values that expired by "now", so with a clock read
        # twice a value could be hidden from min() without having been dropped by expire().
        with self._cache.timer:
            self._cache.expire()
            oldest = min((since for _, since in self._cache.values()), default=None)
        if oldest is not None:
            self._timer_when = oldest + self._ttl
            # In a context of its own: the caller's (and what its ContextVars hold) is not kept alive.
            self._timer = self._loop.call_at(self._timer_when, self._on_timer, context=contextvars.Context())

    def _on_timer(self) -> None:
        self._timer = None
        # call_at may fire up to one clock resolution early; expire as of the time it was meant for.
        self._cache.expire(max(self._loop.time(), self._timer_when))
        self._schedule()
