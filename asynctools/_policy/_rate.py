"""Rate limiters that count a request from its start until its answer: in-process, or shared through Redis.

Why until the answer, and not only at the start: a limiter that counts requests when it lets them go
cannot see when they reach the server. Connection set-up, TLS, a busy loop or another process's
scheduling delay some and not others, and a window's worth of delayed requests then arrives together
with the next window's: the server counts more than the limit in one of its windows (measured: up to
100 in a second for "50 per second"). Holding a request's place from its start until its response
arrives, then for ``per`` seconds more, bounds what the server can see: its arrival lies somewhere in
that span, so no window of ``per`` seconds at the server holds more than the limit. The price is the
response time: the steady rate is ``requests`` per ``per`` + response time.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
import uuid
from typing import Any, Final

from aiohttp import ClientError

from .._redact import redact, redact_repr
from ._config import RateLimit

__all__ = ("LocalLimiter", "RedisLimitError", "RedisLimiter", "make_limiter")

logger = logging.getLogger("asynctools")

# A place in Redis held by a request whose answer never came back (its process died) is given back
# after this many seconds (then ``per`` more): a crash costs one place for a while, never for ever.
IN_FLIGHT_LEASE: Final = 300.0


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
    """At most ``requests`` places in any ``per`` seconds, optionally at most ``burst`` back to back.

    A place is taken by ``acquire()`` and held until ``finish()`` (the response arrived, or the attempt
    failed), then for ``per`` seconds: the log keeps the finish times (exact, unlike a fixed window that
    lets twice the limit through around its reset). ``burst`` is a GCRA on the starts (one theoretical
    arrival time). Waiters queue on one FIFO lock and wait while holding it, so they go in arrival
    order, and a waiter cancelled while waiting leaves without having taken anything.

    Times are ``time.monotonic()`` (what asyncio's own loop reads), called directly: the limiter is on
    every request's path, and ``asyncio.get_running_loop().time()`` costs a Python call more each time.
    Only differences of these times are used, so the loop's clock and this one need not agree.
    """

    def __init__(self, rate: RateLimit, figures: _Figures | None = None) -> None:
        self._limit = rate.requests
        self._per = float(rate.per)
        self._held = 0  # started, not finished
        # Finish times, oldest first. Only the last `requests` can hold a new start back.
        self._finished: collections.deque[float] = collections.deque(maxlen=rate.requests)
        self._freed: asyncio.Event | None = None  # set by finish() while a waiter needs a held place
        self._interval = self._per / rate.requests
        # GCRA tolerance: how far ahead of the steady pace the theoretical arrival time may run.
        self._tolerance = None if rate.burst is None else self._interval * (rate.burst - 1)
        self._tat = -float("inf")
        self._lock = asyncio.Lock()
        self._queued = 0  # in the slow path: while any, newcomers queue behind them (no overtaking)
        self.figures = figures if figures is not None else _Figures()

    def _delay(self, now: float) -> float | None:
        """Seconds until a place frees up (0: one is free), or ``None`` until a held one finishes."""
        finished = self._finished
        while finished and finished[0] <= now - self._per:
            finished.popleft()
        # Places to give back before one is free: the oldest finish times leave the window first.
        excess = self._held + len(finished) - self._limit
        if excess < 0:
            delay = 0.0
        elif excess < len(finished):
            delay = finished[excess] + self._per - now
        else:
            return None
        if self._tolerance is not None:
            delay = max(delay, self._tat - self._tolerance - now)
        return delay

    def take(self, now: float) -> None:
        """Hold a place from *now* (``time.monotonic()``) without waiting (granted elsewhere: by Redis)."""
        self._held += 1
        if self._tolerance is not None:
            self._tat = max(self._tat, now) + self._interval

    def finish(self, token: str | None = None) -> None:
        """Give back a place taken by ``acquire()`` or ``take()``: it stays counted for ``per`` seconds."""
        self._held -= 1
        finished, now = self._finished, time.monotonic()
        # One stale time out for each one in: the log stays as long as the busiest window so far (at
        # most `requests`), and try_take() need not look at the clock while the limit is far off.
        if finished and finished[0] <= now - self._per:
            finished.popleft()
        finished.append(now)
        if self._freed is not None:
            self._freed.set()

    def try_take(self) -> bool:
        """Hold a place if one is free now and nobody is queued for one; ``False`` (nothing taken) if not.

        The common case of a limit not reached, without a coroutine: the caller awaits ``acquire()``
        only when this says ``False``. A place taken here is given back by ``finish()``.
        """
        if self._queued:  # newcomers queue behind those waiting (no overtaking)
            return False
        # `_delay(now) == 0.0`, then `take(now)`, written out: this runs for every request, and each
        # Python call costs as much as all the arithmetic. The log may hold stale times (finish()
        # drops one per call): they only count too much, so they are dropped when they would matter.
        finished = self._finished
        if self._held + len(finished) >= self._limit:
            now = time.monotonic()
            while finished and finished[0] <= now - self._per:
                finished.popleft()
            if self._held + len(finished) >= self._limit:
                return False
        if self._tolerance is not None:
            now = time.monotonic()
            if self._tat - self._tolerance > now:
                return False
            self._tat = max(self._tat, now) + self._interval
        self._held += 1
        return True

    async def acquire(self) -> str | None:
        """Wait until a place is free, then hold it (``finish()`` gives it back). Returns ``None``.

        Cancelling the wait takes nothing.
        """
        if self.try_take():
            return None
        figures = self.figures
        began = time.monotonic()
        figures.waits += 1
        figures.waiting += 1
        self._queued += 1
        try:
            async with self._lock:
                while (delay := self._delay(time.monotonic())) != 0.0:
                    if delay is None:  # every place is held by a request still waiting for its answer
                        freed = self._freed = self._freed or asyncio.Event()
                        freed.clear()
                        await freed.wait()
                    elif delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        break
                self.take(time.monotonic())
        finally:
            self._queued -= 1
            figures.waiting -= 1
            figures.wait_seconds += time.monotonic() - began
        return None


# KEYS[1]: the origin's sorted set of places, each scored by when it leaves the window's count: its
# finish time, or (while in flight) its start + IN_FLIGHT_LEASE. KEYS[2]: places given back as unused
# before this script reached Redis (see _RETURN). ARGV: limit, per, lease, place name.
# Returns "" when the place was taken (or was given back already: nobody waits for the answer), else
# the seconds until the one blocking it leaves. Redis's own clock (TIME) keeps the window, so clients'
# clocks need not agree.
_ACQUIRE: Final = """
local key = KEYS[1]
local limit, per, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZREM', KEYS[2], ARGV[4]) == 1 then
  return ''
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - per)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now + lease, ARGV[4])
  redis.call('PEXPIRE', key, math.ceil((per + lease) * 1000))
  return ''
end
local blocking = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return tostring(tonumber(blocking[2]) + per - now)
"""

# KEYS: as above; ARGV: lease, then pairs of (place, "f" or "u"). A finished place ("f") counts until
# now + per (if it is still there); an unused one ("u": its acquire was cancelled or timed out in its
# round trip, its request never sent) is taken back. The give-back travels on another connection than
# the acquire, so it may reach Redis first: an unused place not found is remembered in KEYS[2] (for
# the lease), and an acquire arriving later for it takes nothing.
_RETURN: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == 'f' then
    redis.call('ZADD', KEYS[1], 'XX', now, ARGV[i])
  elseif redis.call('ZREM', KEYS[1], ARGV[i]) == 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    redis.call('ZADD', KEYS[2], now + lease, ARGV[i])
    redis.call('PEXPIRE', KEYS[2], math.ceil(lease * 1000))
  end
end
return 0
"""


class RedisLimiter:
    """The same window kept in Redis (redis-py, two small Lua scripts), shared by every process.

    Taking a place is one atomic script on the server (test and record), so processes cannot both take
    the last place; giving places back is another, run by one background task that sends all those
    waiting at once, so responses are not held up. Over the limit, it sleeps until the place blocking
    it leaves and asks again (polling: nothing tells a process of room made by another); the process's
    other requests queue behind it on one FIFO lock, in order, asking one at a time. A waiter cancelled
    while asleep takes nothing; one cancelled (or timed out) during its round trip to Redis gives back
    the place the script may have taken. Places not yet given back when the loop ends (``asyncio.run()``
    cancels the background task) are given back by ``aclose()``, which the registry awaits at shutdown.

    A place whose request is in flight more than ``IN_FLIGHT_LEASE`` (300 s: a long upload, a long
    poll) stops counting then. Needs Redis 5 or later (a script that reads ``TIME`` and then writes).

    Why not a limiter library: ``limits`` and PyrateLimiter count a request when it is let go and
    cannot hold its place until its answer, which is what keeps the server's windows within the limit
    (see the module's docstring).
    """

    def __init__(self, rate: RateLimit, origin: str) -> None:
        assert rate.redis is not None
        try:
            import redis.asyncio
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
        client = redis.asyncio.Redis(connection_pool=self._pool)
        self._acquire_script: Any = client.register_script(_ACQUIRE)
        self._return_script: Any = client.register_script(_RETURN)
        # float(per): RateLimit(20, 1) and RateLimit(20, 1.0) are equal, and must count together.
        key = f"{config.prefix}:rate:{rate.requests}/{float(rate.per)!r}:{origin}"
        self._keys = [key, f"{key}:gone"]
        self._args = (rate.requests, float(rate.per), IN_FLIGHT_LEASE)
        self._per = float(rate.per)
        # While a place in Redis is held by a request still in flight, how often to ask again.
        self._poll = min(max(self._per / rate.requests, 0.005), 1.0)
        self._names = f"{uuid.uuid4().hex}:"  # this limiter's places: name + a counter
        self._count = 0
        self._origin = origin
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError, asyncio.TimeoutError)
        self._local = LocalLimiter(RateLimit(rate.requests, rate.per), self.figures)
        self._local_until = -float("inf")
        self._lock = asyncio.Lock()
        self._queued = 0  # in the slow path: while any, newcomers queue behind them (no overtaking)
        # Places to give back to Redis (name -> "f" finished or "u" unused), and the task sending them.
        self._returns: dict[str, str] = {}
        self._returner: asyncio.Task[None] | None = None
        self._return_warned = -float("inf")  # when a failed give-back was last logged
        self._closed = False

    def try_take(self) -> bool:
        """Always ``False``: a place in the shared window takes a round trip to Redis (``acquire()``)."""
        return False

    async def acquire(self) -> str | None:
        """Wait until the shared window has room, then hold a place in it; return what ``finish()`` takes.

        Raises ``RedisLimitError`` when Redis cannot be reached and ``on_error="fail"``.
        """
        loop = asyncio.get_running_loop()
        if not self._queued:  # the common case: one round trip
            taken = await self._try(loop)
            if not isinstance(taken, float):
                return taken
        figures = self.figures
        began = loop.time()
        figures.waits += 1
        figures.waiting += 1
        self._queued += 1
        try:
            async with self._lock:
                # Polling Redis is the only way to hear of room made by other processes.
                while isinstance(taken := await self._try(loop), float):  # noqa: ASYNC110
                    await asyncio.sleep(taken)
                return taken
        finally:
            self._queued -= 1
            figures.waiting -= 1
            figures.wait_seconds += loop.time() - began

    async def _try(self, loop: asyncio.AbstractEventLoop) -> str | float | None:
        """Take a place: its name in Redis, ``None`` for one taken in-process, or seconds to wait."""
        if loop.time() < self._local_until:
            await self._local.acquire()
            return None
        self._count += 1
        name = f"{self._names}{self._count}"
        try:
            blocked = await self._acquire_script(keys=self._keys, args=[*self._args, name])
        except BaseException as exc:
            # The script may have taken the place before the error (a timeout, a cancellation, a
            # ClientTimeout firing while we wait) reached us: give it back, the request is not sent.
            self._give_back(name, "u")
            if not isinstance(exc, self._errors):
                raise
            self.figures.redis_errors += 1
            if self._config.on_error == "fail":
                raise RedisLimitError(
                    f"the rate limit for {self._origin} is shared through Redis at "
                    f"{redact_repr(self._config.url)}, which could not be reached ({redact(repr(exc))}); "
                    "start Redis or pass "
                    "RedisLimit(..., on_error='local') to count in this process meanwhile"
                ) from exc
            logger.warning(
                "Redis at %s unreachable (%s): the rate limit for %s counts in this process for %s s",
                redact_repr(self._config.url),
                redact(repr(exc)),
                self._origin,
                self._config.recheck,
            )
            self._local_until = loop.time() + self._config.recheck
            await self._local.acquire()
            return None
        if not blocked:
            # Held in the local log too, so that a fallback to it goes on from this process's window
            # instead of an empty one (which would let a second full window through at once).
            self._local.take(time.monotonic())
            return name
        delay = float(blocked)
        # Longer than `per`: the blocking place is still in flight and may finish any moment.
        return min(delay, self._poll) if delay > self._per else max(delay, 0.001)

    def finish(self, token: str | None) -> None:
        """Give back the place *token* (from ``acquire()``): it stays counted for ``per`` seconds more."""
        self._local.finish()
        if token is not None:
            self._give_back(token, "f")

    def _give_back(self, name: str, how: str) -> None:
        self._returns[name] = how
        if self._returner is None and not self._closed:
            # Its own task and context: the response goes on at once, and the caller's context is not
            # kept. Places given back meanwhile go with the next round trip.
            self._returner = contextvars.Context().run(
                asyncio.get_running_loop().create_task, self._send_returns()
            )

    async def _send_returns(self) -> None:
        try:
            while self._returns:
                batch, self._returns = self._returns, {}
                try:
                    await self._return(batch)
                except BaseException:
                    self._returns = {**batch, **self._returns}  # not known to be given back: keep them
                    raise
        except self._errors as exc:
            self._failed_return(exc)  # kept: the next give-back or aclose() tries again
        finally:
            self._returner = None

    async def _return(self, batch: dict[str, str]) -> None:
        args = [IN_FLIGHT_LEASE, *(item for pair in batch.items() for item in pair)]
        await self._return_script(keys=self._keys, args=args)

    def _failed_return(self, exc: BaseException) -> None:
        # Not in redis_errors, which counts requests that met Redis unreachable: this one was answered.
        now = time.monotonic()
        if now - self._return_warned >= self._config.recheck:  # once a while, not once a request
            self._return_warned = now
            logger.warning(
                "Redis at %s unreachable (%s): places in the rate limit for %s stay held for up to %s s",
                redact_repr(self._config.url),
                redact(repr(exc)),
                self._origin,
                IN_FLIGHT_LEASE,
            )

    async def aclose(self) -> None:
        """Give back the places still held or being given back, then close the connections to Redis.

        Places finished after this are counted in Redis until ``IN_FLIGHT_LEASE`` ends.
        """
        self._closed = True
        try:
            if self._returner is not None:
                await asyncio.gather(self._returner, return_exceptions=True)  # cancelled at exit, maybe
            if self._returns:
                batch, self._returns = self._returns, {}
                try:
                    await self._return(batch)
                except self._errors as exc:
                    self._failed_return(exc)
        finally:
            await self._pool.disconnect()


def make_limiter(rate: RateLimit, origin: str) -> LocalLimiter | RedisLimiter:
    """The limiter *rate* asks for, counting requests to *origin*."""
    return LocalLimiter(rate) if rate.redis is None else RedisLimiter(rate, origin)
