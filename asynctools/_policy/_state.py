"""One site's live state under its policy: its limits, its pause, its retries and its figures."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import ClientConnectionError, ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType

from ._breaker import CircuitBreaker
from ._budget import RetryBudget
from ._config import Retry, SitePolicy
from ._pause import PAUSE_STATUSES, SitePause
from ._quota import Quota, read_quota
from ._rate import LocalLimiter, RedisLimiter, make_limiter
from ._retry import RetryError, backoff, body_replayable, retry_after, retryable_error

#: Statuses a site answers with when its quota is spent (GitHub: 403), retried after the reset with
#: ``from_headers=True`` whatever ``Retry.statuses`` holds.
QUOTA_STATUSES: Final = frozenset({403, 429})
#: A retry the server asked to wait at least this long for spends no retry budget.
FREE_RETRY_WAIT: Final = 1.0

__all__ = ("SiteState", "SiteStats")


@dataclass(frozen=True)
class SiteStats:
    """What one site's policy has done since its ``SiteState`` was made, as ``registry.stats()`` shows it.

    ``requests``: requests that went through the policy; ``attempts``: times one was sent (retries
    included); ``in_flight``: sent and not yet released (response body unread); ``retries``: retries by
    cause (the status code as a string, or the exception's class name); ``gave_up``: requests that ran
    out of attempts or time; ``rate_waits`` / ``rate_wait_seconds``: requests that waited for the rate
    limit and how long in all; ``rate_waiting``: waiting now; ``redis_errors``: times Redis could not be
    reached; ``pauses`` / ``pause_seconds``: times a 429 or 503 asked the whole site to wait (see
    ``Retry``) and how long it was paused in all; ``quota_remaining`` / ``quota_reset``: with
    ``from_headers=True``, what the site's latest response said was left of its quota, and the seconds
    to its reset from that response (``None``: not said); ``budget_refusals``: retries the retry budget
    refused; ``breaker``: ``"closed"``, ``"open"`` or ``"half-open"`` (``None`` without one) and
    ``breaker_opened``: times it opened.
    """

    origin: str
    requests: int
    attempts: int
    in_flight: int
    retries: Mapping[str, int]
    gave_up: int
    rate_waits: int
    rate_wait_seconds: float
    rate_waiting: int
    redis_errors: int
    pauses: int = 0
    pause_seconds: float = 0.0
    quota_remaining: int | None = None
    quota_reset: float | None = None
    budget_refusals: int = 0
    breaker: str | None = None
    breaker_opened: int = 0


class SiteState:
    """The limiter, the concurrency semaphore and the figures of one origin under *policy*.

    Made once per (registry, loop, origin) and shared by every session to that origin on that loop, so
    limits hold across all of them. *origin* names the site in stats, logs and the Redis key (use one
    spelling per origin, e.g. ``"https://api.github.com"``). Call ``aclose()`` when done (it closes the
    Redis connections of a shared rate limit).

    Raises ``TypeError`` for a *policy* that is not a ``SitePolicy``, and ``ImportError`` for a Redis
    rate limit without the ``redis`` extra installed.
    """

    def __init__(self, policy: SitePolicy, origin: str) -> None:
        if not isinstance(policy, SitePolicy):
            raise TypeError(f"SiteState needs a SitePolicy, not {policy!r}")
        self.policy = policy
        self.origin = origin
        # None when nothing is ever retried, so that each request asks one question, not two.
        self._retry = policy.retry if policy.retry is not None and policy.retry.attempts > 1 else None
        self._limiter: LocalLimiter | RedisLimiter | None = (
            None if policy.rate is None else make_limiter(policy.rate, origin)
        )
        self._semaphore = None if policy.concurrency is None else asyncio.Semaphore(policy.concurrency)
        self._pause = SitePause()
        # How long a request may be held back by the site's pause (the default Retry's without retries).
        self._max_wait = (policy.retry or Retry()).max_wait
        self._learn = policy.from_headers
        self._quota: Quota | None = None  # the latest a response said, with from_headers
        budget = None if self._retry is None else self._retry.budget
        self._budget = None if budget is None else RetryBudget(budget)
        self._breaker = None if policy.breaker is None else CircuitBreaker(policy.breaker)
        self._requests = 0
        self._attempts = 0
        self._in_flight = 0
        self._retries: collections.Counter[str] = collections.Counter()
        self._gave_up = 0

    def __repr__(self) -> str:
        return f"<SiteState {self.origin} {self.policy!r}>"

    def stats(self) -> SiteStats:
        """A snapshot of this site's figures."""
        figures = self._limiter.figures if self._limiter is not None else None
        return SiteStats(
            origin=self.origin,
            requests=self._requests,
            attempts=self._attempts,
            in_flight=self._in_flight,
            retries=dict(self._retries),  # a copy: asdict() and json work on it
            gave_up=self._gave_up,
            rate_waits=figures.waits if figures else 0,
            rate_wait_seconds=figures.wait_seconds if figures else 0.0,
            rate_waiting=figures.waiting if figures else 0,
            redis_errors=figures.redis_errors if figures else 0,
            pauses=self._pause.pauses,
            pause_seconds=self._pause.seconds,
            quota_remaining=None if self._quota is None else self._quota.remaining,
            quota_reset=None if self._quota is None else self._quota.reset,
            budget_refusals=0 if self._budget is None else self._budget.refused,
            breaker=None if self._breaker is None else self._breaker.state,
            breaker_opened=0 if self._breaker is None else self._breaker.opened,
        )

    async def aclose(self) -> None:
        """Close what the state holds outside the process (the Redis connections of a shared limit)."""
        if isinstance(self._limiter, RedisLimiter):
            await self._limiter.aclose()

    def _release(self) -> None:
        """An attempt is over (its response released, or it failed): its concurrency place is free.

        A bound method rather than a closure per attempt: everything it needs is on ``self``, and a
        connection calls its callbacks once.
        """
        self._in_flight -= 1
        if self._semaphore is not None:
            self._semaphore.release()

    async def _send(
        self, req: ClientRequest, handler: ClientHandlerType, retry: Retry | None, first: bool = True
    ) -> ClientResponse:
        """One attempt: a concurrency place, then a rate-limit place, then the request.

        *first*: the request's first attempt, which counts the request. The middleware calls this
        directly, not ``request()``: that would be one more coroutine on every request.

        The concurrency place is taken first so that the rate-limit place is taken just before the
        request leaves: taken first, places held back by the semaphore would leave together, over the
        rate. The rate-limit place is held until the response (its headers) arrives. The concurrency
        place is held until the response is released (its body read, ``release()``, or the ``async
        with`` left), as aiohttp's own connection limits are: the server is still busy sending it.

        With *retry*, this is the first attempt of a request that may be retried: one that fails in a
        way *retry* covers, with a body that can be sent again, is handed to ``_retrying``. The first
        attempt is made here, in the one coroutine the middleware awaits, because nearly every request
        succeeds at once: the body check, the retry loop and its bookkeeping (and a second coroutine)
        cost only the requests that fail.
        """
        if first:
            self._requests += 1
            if self._budget is not None:
                self._budget.deposit()
        breaker = self._breaker
        if breaker is not None:
            breaker.admit(self.origin)  # open: refused here, before anything is taken
        # time.monotonic(), not the loop's time (a Python call more): only differences are used.
        started = 0.0 if retry is None or retry.total is None else time.monotonic()
        semaphore = self._semaphore
        if semaphore is not None:
            try:
                await semaphore.acquire()
            except BaseException:
                if breaker is not None:
                    breaker.abandoned()  # a probe cancelled: another may go
                raise
        limiter = self._limiter
        place = None
        pause = self._pause
        # try_take(): a place free at once costs no coroutine; only a request that must wait awaits.
        if pause.until or (limiter is not None and not limiter.try_take()):
            try:
                if pause.until:  # the site asked every request to wait: this one too, before its place
                    await pause.wait(self.origin, self._max_wait)
                    if limiter is not None and not limiter.try_take():
                        place = await limiter.acquire()
                else:
                    assert limiter is not None
                    place = await limiter.acquire()
            except BaseException:
                if semaphore is not None:
                    semaphore.release()
                if breaker is not None:
                    breaker.abandoned()
                raise
        # In flight from here: a request waiting for the rate limit has not been sent.
        self._in_flight += 1
        self._attempts += 1
        failed: ClientConnectionError | None = None
        try:
            try:
                resp = await handler(req)
            finally:
                # The server has the request (or never will): its place in the rate limit counts from
                # now for the limit's window, so the server's own windows stay within it.
                if limiter is not None:
                    limiter.finish(place)
        except ClientConnectionError as exc:
            self._release()
            if breaker is not None:
                breaker.failed()
            if retry is None or not retryable_error(exc, req.method, retry) or not body_replayable(req):
                raise
            failed = exc
        except BaseException:
            self._release()
            if breaker is not None:
                breaker.abandoned()
            raise
        if failed is not None:  # retried outside the except clause, so later errors do not chain to it
            assert retry is not None
            return await self._retrying(req, handler, retry, started, None, failed)
        connection = resp.connection
        if connection is None:  # body already complete (or none): nothing is in flight any more
            self._in_flight -= 1  # what _release() does, written out: the usual case for small bodies
            if semaphore is not None:
                semaphore.release()
        else:
            connection.add_callback(self._release)
        if breaker is not None:
            if resp.status >= 500:
                breaker.failed()
            else:
                breaker.succeeded()
        spent = False
        if self._learn:
            spent = self._heed_quota(resp)
        if resp.status in PAUSE_STATUSES:
            asked = retry_after(resp.headers, time.time())
            if asked is not None:
                pause.ask(asked, f"{resp.status} Retry-After")
        if (
            retry is not None
            and (resp.status in retry.statuses or (spent and resp.status in QUOTA_STATUSES))
            and req.method in retry.methods
            and body_replayable(req)
        ):
            return await self._retrying(req, handler, retry, started, resp, None)
        return resp

    def _heed_quota(self, resp: ClientResponse) -> bool:
        """Note the quota *resp* states; pause the site until its reset if it is spent (say whether)."""
        quota = read_quota(resp.headers, time.time())
        if quota is None:
            return False
        self._quota = quota
        if quota.remaining > 0:
            return False
        if quota.reset is not None:
            self._pause.ask(quota.reset, f"{quota.header}: 0")
        return True

    def _asked(self, resp: ClientResponse) -> float | None:
        """Seconds *resp* asks to wait: its Retry-After, else (with from_headers) its spent quota's reset."""
        asked = retry_after(resp.headers, time.time())
        if asked is None and self._learn:
            quota = read_quota(resp.headers, time.time())
            if quota is not None and quota.remaining == 0:
                asked = quota.reset
        return asked

    def _spent(self, resp: ClientResponse) -> bool:
        quota = read_quota(resp.headers, time.time())
        return quota is not None and quota.remaining == 0

    async def request(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send *req* through *handler* under the policy: limits on each attempt, retries as allowed.

        Returns the response; a response with a retryable status is returned as it is once attempts or
        time run out (so ``raise_for_status`` still applies). Raises ``RetryError`` (a
        ``ClientConnectionError``) when the last allowed attempt failed with a retryable connection
        error, ``RedisLimitError`` when a Redis-shared rate limit cannot be reached, and any other
        error of an attempt as it is.
        """
        return await self._send(req, handler, self._retry)

    async def _retrying(
        self,
        req: ClientRequest,
        handler: ClientHandlerType,
        retry: Retry,
        started: float,
        resp: ClientResponse | None,
        error: ClientConnectionError | None,
    ) -> ClientResponse:
        """Retry a request whose first attempt failed (*resp*, a retryable status, or *error*).

        As often as *retry* allows; *started*: ``time.monotonic()`` when the first attempt began
        (``total`` counts from it).
        """
        method = req.method
        failures: list[str] = []
        waits: list[float] = []
        while True:
            asked: float | None = None
            if error is not None:
                cause = type(error).__name__
                failures.append(f"{cause}: {error}" if str(error) else cause)
            else:
                assert resp is not None
                if method not in retry.methods or (
                    resp.status not in retry.statuses
                    and not (self._learn and resp.status in QUOTA_STATUSES and self._spent(resp))
                ):
                    return resp
                cause = str(resp.status)
                failures.append(f"HTTP {resp.status} {resp.reason or ''}".rstrip())
                asked = self._asked(resp)
            if len(failures) >= retry.attempts:
                reason = f"{retry.attempts} attempts allowed"
            elif self._breaker is not None and self._breaker.tripped:
                # The failures just seen opened the breaker: the answer (or error) in hand is the last.
                reason = "the site's circuit breaker opened"
            elif asked is not None and asked > retry.max_wait:
                reason = f"the server asked to wait {asked:.3g} s, over max_wait={retry.max_wait!r}"
            else:
                wait = asked if asked is not None else backoff(retry, len(failures))
                budget = self._budget
                if retry.total is not None and time.monotonic() + wait - started > retry.total:
                    reason = f"waiting {wait:.3g} s more would pass total={retry.total!r}"
                elif (
                    (asked is None or asked < FREE_RETRY_WAIT)
                    and budget is not None
                    and not budget.withdraw()
                ):
                    # A retry the server asked to wait a second or more for spends nothing: it adds no
                    # load; one it asked for sooner (Retry-After: 0) spends as any other.
                    reason = f"the site's retry budget is spent (Retry(budget={budget.share!r}))"
                else:
                    self._retries[cause] += 1
                    # A response that asked to wait paused the site: the next attempt waits that out,
                    # with jitter, as every other request to the site does.
                    paused = asked is not None and self._pause.until > time.monotonic()
                    if resp is not None:
                        resp.release()  # frees its connection (and concurrency place) before we wait
                    waits.append(wait)
                    if not paused:
                        await asyncio.sleep(wait)
                    resp = error = None
                    try:
                        resp = await self._send(req, handler, None, first=False)
                    except ClientConnectionError as exc:
                        if not retryable_error(exc, method, retry):
                            raise
                        error = exc
                    continue
            self._gave_up += 1
            if resp is not None:
                return resp
            assert error is not None
            raise RetryError(method, req.url, tuple(failures), tuple(waits), reason) from error
