"""A TTL + LRU cache of idle sessions that never drops one silently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cachetools import TTLCache

__all__ = ("IdleCache",)

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
