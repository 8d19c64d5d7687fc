"""Rate limiters: an exact sliding window in-process, or one shared through Redis with ``limits``."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from aiohttp import ClientError

from ._config import RateLimit

__all__ = ("LocalLimiter", "RedisLimitError", "RedisLimiter", "make_limiter")

logger = logging.getLogger("asynctools")


class RedisLimitError(ClientError):
    """The Redis server a shared ``RateLimit`` counts in could not be reached (with ``on_error="fail"``).

    The request was not sent. A ``ClientError``, so handlers for failed requests catch it; the
    underlying error is ``__cause__``.
    """


class _Figures:
    """What a limiter has done: requests that had to wait, seconds waited, waiting now."""

    __slots__ = ("redis_errors", "wait_seconds", "waiting", "waits")

    def __init__(self) -> None:
        self.waits = 0
        self.wait_seconds = 0.0
        self.waiting = 0
        self.redis_errors = 0


class LocalLimiter:
    """At most ``requests`` starts in any ``per`` seconds, optionally at most ``burst`` back to back.

    The window is a log of start times (exact, unlike a fixed window that lets twice the limit through
    around its reset); ``burst`` is a GCRA on top (one theoretical arrival time). Waiters queue on one
    FIFO lock and sleep while holding it, so they go in arrival order, and a waiter cancelled in its
    sleep leaves without having taken anything.
    """

    def __init__(self, rate: RateLimit, figures: _Figures | None = None) -> None:
        self._limit = rate.requests
        self._per = float(rate.per)
        # Only the last `requests` starts can hold a new one back: older ones fall off by themselves.
        self._starts: collections.deque[float] = collections.deque(maxlen=rate.requests)
        self._interval = self._per / rate.requests
        # GCRA tolerance: how far ahead of the steady pace the theoretical arrival time may run.
        self._tolerance = None if rate.burst is None else self._interval * (rate.burst - 1)
        self._tat = -float("inf")
        self._lock = asyncio.Lock()
        self._queued = 0  # in the slow path: while any, newcomers queue behind them (no overtaking)
        self.figures = figures if figures is not None else _Figures()

    def _delay(self, now: float) -> float:
        starts = self._starts
        while starts and starts[0] <= now - self._per:
            starts.popleft()
        delay = starts[0] + self._per - now if len(starts) >= self._limit else 0.0
        if self._tolerance is not None:
            delay = max(delay, self._tat - self._tolerance - now)
        return delay

    def record(self, now: float) -> None:
        """Count a start made elsewhere (granted by Redis) at loop time *now*, without waiting."""
        self._take(now)

    def _take(self, now: float) -> None:
        self._starts.append(now)
        if self._tolerance is not None:
            self._tat = max(self._tat, now) + self._interval

    async def acquire(self) -> None:
        """Wait until a request may start, then count it. Cancelling the wait takes nothing."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._queued and self._delay(now) <= 0:  # the common case: no await at all
            self._take(now)
            return
        figures = self.figures
        began = now
        figures.waits += 1
        figures.waiting += 1
        self._queued += 1
        try:
            async with self._lock:
                # A deadline, not an event: nothing but time makes room in the window.
                while (delay := self._delay(loop.time())) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(delay)
                self._take(loop.time())
        finally:
            self._queued -= 1
            figures.waiting -= 1
            figures.wait_seconds += loop.time() - began


class RedisLimiter:
    """The same sliding window kept in Redis by ``limits`` (``MovingWindowRateLimiter``, redis-py).

    Each start is one atomic Lua script on the server (test and record), so processes cannot both take
    the last place. Over the limit, it sleeps until the oldest start leaves the window and asks again;
    the process's other requests queue behind it on one FIFO lock, in order, asking one at a time. A
    waiter cancelled while asleep takes nothing; one cancelled during its round trip to Redis may have
    taken its place (the script cannot be taken back).
    """

    def __init__(self, rate: RateLimit, origin: str) -> None:
        assert rate.redis is not None
        try:
            import redis.asyncio
            from limits import RateLimitItemPerSecond
            from limits.aio.storage import RedisStorage
            from limits.aio.strategies import MovingWindowRateLimiter
        except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
            raise ImportError(
                "RateLimit(redis=...) needs the 'redis' extra: "
                f"pip install 'aiohttp-asynctools[redis]' ({exc})"
            ) from exc
        config = rate.redis
        self._config = config
        self.figures = _Figures()
        # Our own pool, so that connect and read timeouts apply and aclose() can close it.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            config.url, socket_connect_timeout=config.timeout, socket_timeout=config.timeout
        )
        pool: Any = self._pool  # limits types its options as str | float | bool; it takes a pool too
        storage = RedisStorage(
            "async+" + config.url if not config.url.startswith("unix") else "async+redis+" + config.url,
            implementation="redispy",
            connection_pool=pool,
            key_prefix=config.prefix,
        )
        self._strategy = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(rate.requests, int(rate.per))
        self._origin = origin
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError, asyncio.TimeoutError)
        self._local = LocalLimiter(RateLimit(rate.requests, rate.per), self.figures)
        self._local_until = -float("inf")
        self._lock = asyncio.Lock()
        self._queued = 0  # in the slow path: while any, newcomers queue behind them (no overtaking)

    async def acquire(self) -> None:
        """Wait until the shared window has room, then count this start in it.

        Raises ``RedisLimitError`` when Redis cannot be reached and ``on_error="fail"``.
        """
        loop = asyncio.get_running_loop()
        if not self._queued and (await self._try(loop)) is None:  # the common case: one round trip
            return
        figures = self.figures
        began = loop.time()
        figures.waits += 1
        figures.waiting += 1
        self._queued += 1
        try:
            async with self._lock:
                # Polling Redis is the only way to hear of room made by other processes.
                while (delay := await self._try(loop)) is not None:  # noqa: ASYNC110
                    await asyncio.sleep(delay)
        finally:
            self._queued -= 1
            figures.waiting -= 1
            figures.wait_seconds += loop.time() - began

    async def _try(self, loop: asyncio.AbstractEventLoop) -> float | None:
        """Take a place in the window (``None``), or say how long until the next may free up."""
        if loop.time() < self._local_until:
            await self._local.acquire()
            return None
        try:
            if await self._strategy.hit(self._item, self._origin):
                # Kept in the local log too, so that a fallback to it goes on from this process's window
                # instead of an empty one (which would let a second full window through at once).
                self._local.record(loop.time())
                return None
            stats = await self._strategy.get_window_stats(self._item, self._origin)
        except self._errors as exc:
            self.figures.redis_errors += 1
            if self._config.on_error == "fail":
                raise RedisLimitError(
                    f"the rate limit for {self._origin} is shared through Redis at {self._config.url!r}, "
                    f"which could not be reached ({exc!r}); start Redis or pass "
                    "RedisLimit(..., on_error='local') to count in this process meanwhile"
                ) from exc
            logger.warning(
                "Redis at %r unreachable (%r): the rate limit for %s counts in this process for %s s",
                self._config.url,
                exc,
                self._origin,
                self._config.recheck,
            )
            self._local_until = loop.time() + self._config.recheck
            await self._local.acquire()
            return None
        # The window's oldest start leaves at reset_time (wall clock, as limits keeps it).
        return max(stats.reset_time - time.time(), 0.001)

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        await self._pool.disconnect()


def make_limiter(rate: RateLimit, origin: str) -> LocalLimiter | RedisLimiter:
    """The limiter *rate* asks for, counting starts to *origin*."""
    return LocalLimiter(rate) if rate.redis is None else RedisLimiter(rate, origin)
