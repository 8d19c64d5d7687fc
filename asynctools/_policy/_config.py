"""What a user states about a site: ``SitePolicy``, ``Retry``, ``RateLimit`` and ``RedisLimit``.

All four are frozen dataclasses, compared and hashed by value: two equal policies for one origin are one
policy, which is how the registry tells a repeated statement from a conflicting one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, fields
from typing import Literal

from .._redact import redact_repr

__all__ = ("Breaker", "RateLimit", "RedisLimit", "Retry", "SitePolicy")

DEFAULT_STATUSES = frozenset({429, 502, 503, 504})
# RFC 9110 9.2.2: methods whose repetition has the effect of one request (TRACE left out: nobody wants it).
DEFAULT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _number(owner: str, name: str, value: object, *, positive: bool = False, none: bool = False) -> None:
    """Raise unless *value* is a finite real number >= 0 (> 0 with *positive*), or ``None`` with *none*."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        also = " or None" if none else ""
        raise TypeError(f"{owner}({name}=...) must be a number of seconds{also}, not {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{owner}({name}=...) must be a finite number of seconds {bound}, not {value!r}")


def _count(owner: str, name: str, value: object, *, minimum: int, none: bool = False) -> None:
    """Raise unless *value* is an int >= *minimum* (or ``None`` with *none*)."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        also = " or None" if none else ""
        raise TypeError(f"{owner}({name}=...) must be an int{also}, not {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}({name}=...) must be >= {minimum}, not {value!r}")


@dataclass(frozen=True)
class Retry:
    """When and how to send a request again.

    *attempts* counts every try, the first included (``attempts=1`` never retries; aiohttp itself still
    sends an idempotent request once more when the kept-alive connection it went on turns out closed,
    RFC 9112 9.3.1.1, and that resend passes through the policy as a request of its own). A request is retried
    after an ``aiohttp.ClientConnectionError`` other than a timeout or a TLS error, or a response whose
    status is in *statuses*, if its method is in *methods* (a connection that could not be opened at all
    is retried whatever the method: nothing was sent) and its body can be sent again (bytes, str, JSON,
    URL-encoded forms; never a file, stream, async generator or multipart body). The wait before retry
    *n* (from 1) is random between 0 and ``min(max_backoff, backoff * 2 ** (n - 1))`` ("full jitter"),
    or what the response's ``retry-after-ms`` or ``Retry-After`` header asks for; a server asking for
    more than *max_wait* seconds is not retried. No retry starts that would end more than *total*
    seconds after the first attempt began (``None``: no such bound).

    *budget*: the share of the site's requests that may be retried, over a sliding 10 s window (plus 10
    retries a second whatever the traffic); once spent, a failed request is not retried (its response
    or error is the answer), so a failing site is not asked ``attempts`` times by every request.
    Retries the server asked to wait a second or more for (``Retry-After``) spend none. ``None``: no
    budget.

    *statuses* and *methods* are sets (any iterable is accepted; kept as frozensets, methods upper-cased).
    Raises ``TypeError`` or ``ValueError`` naming the argument that is not of the right kind.
    """

    attempts: int = 3
    statuses: AbstractSet[int] = DEFAULT_STATUSES
    methods: AbstractSet[str] = DEFAULT_METHODS
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_wait: float = 30.0
    total: float | None = 60.0
    budget: float | None = 0.2

    def __post_init__(self) -> None:
        _count("Retry", "attempts", self.attempts, minimum=1)
        statuses = _frozen("statuses", self.statuses)
        for status in statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(f"Retry(statuses=...) must hold HTTP status codes (100-599), not {status!r}")
        methods = _frozen("methods", self.methods)
        for method in methods:
            if not isinstance(method, str) or not method.isalpha():
                raise ValueError(
                    f"Retry(methods=...) must hold HTTP method names such as 'GET', not {method!r}"
                )
        object.__setattr__(self, "statuses", statuses)
        object.__setattr__(self, "methods", frozenset(str(m).upper() for m in methods))
        _number("Retry", "backoff", self.backoff)
        _number("Retry", "max_backoff", self.max_backoff)
        _number("Retry", "max_wait", self.max_wait)
        _number("Retry", "total", self.total, none=True)
        budget = self.budget
        if budget is not None and (
            isinstance(budget, bool)
            or not isinstance(budget, (int, float))
            or not math.isfinite(budget)
            or budget <= 0
        ):
            raise ValueError(
                f"Retry(budget=...) must be the share of requests that may be retried, a number > 0 such "
                f"as 0.2, or None for no budget, not {budget!r}"
            )


def _frozen(name: str, value: object) -> frozenset[object]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"Retry({name}=...) must be a set or other iterable of values, not {value!r}")
    return frozenset(value)


@dataclass(frozen=True)
class RedisLimit:
    """Share a ``RateLimit`` through Redis: every process using the same *url* and limit counts together.

    *url*: ``redis://``, ``rediss://`` or ``unix://``, as redis-py reads it. Needs the ``redis`` extra
    (``pip install aiohttp-asynctools[redis]``). *timeout*: seconds to connect to and to hear from
    Redis before it counts as unreachable. *on_error*: what a request does when Redis cannot be
    reached: ``"fail"`` raises ``RedisLimitError`` (fails closed: nothing is sent unaccounted), ``"local"``
    counts in this process alone (the limit then holds per process) and asks Redis again after *recheck*
    seconds. *prefix* starts every key this library writes.

    Clocks: the shared window is kept in Redis's own clock, so the clients' clocks need not agree.
    A place held by a process that dies before its answer comes is given back after five minutes
    (then *per* seconds more). Raises ``TypeError`` or ``ValueError`` for a bad argument.
    """

    url: str
    on_error: Literal["fail", "local"] = "fail"
    timeout: float = 1.0
    recheck: float = 5.0
    prefix: str = "asynctools"

    def __post_init__(self) -> None:
        try:
            # Imported here, where the policy is stated (module import time, as a rule), not on the
            # first request: redis-py's import takes over 0.1 s, which would stall the event loop.
            import redis.asyncio  # noqa: F401
        except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
            raise ImportError(
                f"RedisLimit needs the 'redis' extra: pip install 'aiohttp-asynctools[redis]' ({exc})"
            ) from exc
        if not isinstance(self.url, str):
            raise TypeError(
                f"RedisLimit(url=...) must be a str such as 'redis://localhost:6379/0', not "
                f"{redact_repr(self.url)}"
            )
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"RedisLimit(url=...) must start with redis://, rediss:// or unix://, not "
                f"{redact_repr(self.url)}"
            )
        if self.on_error not in ("fail", "local"):
            raise ValueError(
                f"RedisLimit(on_error=...) must be 'fail' (raise when Redis is unreachable) or 'local' "
                f"(count in this process meanwhile), not {self.on_error!r}"
            )
        _number("RedisLimit", "timeout", self.timeout, positive=True)
        _number("RedisLimit", "recheck", self.recheck)
        if not isinstance(self.prefix, str) or not self.prefix:
            raise ValueError(f"RedisLimit(prefix=...) must be a non-empty str, not {self.prefix!r}")

    def __repr__(self) -> str:  # the dataclass's own, with the password in url shown as ***
        shown = ", ".join(
            f"{f.name}={(redact_repr if f.name == 'url' else repr)(getattr(self, f.name))}"
            for f in fields(self)
        )
        return f"{type(self).__qualname__}({shown})"


@dataclass(frozen=True)
class RateLimit:
    """At most *requests* requests reach the site in any window of *per* seconds.

    The window slides (it is not reset on the hour). Each request holds a place from when it is sent
    until its response arrives, then for *per* seconds: whatever delays a request on its way, the
    server never sees more than *requests* in any *per* seconds of its own (the steady rate is
    *requests* per *per* plus the response time). A request over the limit waits (it does not fail)
    until it may go, in the order requests arrived; a waiter that is cancelled takes no place. *burst*
    (1 to *requests*) spreads requests out: at most *burst* back to back, then one every
    ``per / requests`` seconds; ``None`` lets all *requests* go at once. In-process, the limiter keeps
    one timestamp per request in the window. With *redis*, processes and machines share the window
    (*burst* is then not available).

    Raises ``TypeError`` or ``ValueError`` naming the argument that is not of the right kind.
    """

    requests: int
    per: float
    burst: int | None = None
    redis: RedisLimit | None = None

    def __post_init__(self) -> None:
        _count("RateLimit", "requests", self.requests, minimum=1)
        _number("RateLimit", "per", self.per, positive=True)
        _count("RateLimit", "burst", self.burst, minimum=1, none=True)
        if self.burst is not None and self.burst > self.requests:
            raise ValueError(
                f"RateLimit(burst={self.burst!r}) cannot exceed requests={self.requests!r}; "
                "use burst=None to let every request of a window go at once"
            )
        if self.redis is not None:
            if not isinstance(self.redis, RedisLimit):
                raise TypeError(f"RateLimit(redis=...) must be a RedisLimit or None, not {self.redis!r}")
            if self.burst is not None:
                raise ValueError(
                    f"RateLimit(burst={self.burst!r}) is not available with redis= (the shared limit is a "
                    "sliding window of requests per per seconds); drop burst or redis"
                )


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker for a site: after *failures* failed attempts in a row (a connection error or a
    5xx answer), its requests fail at once with ``CircuitOpenError`` for *cooldown* seconds, nothing
    sent; then one probe goes, and its answer closes the breaker or opens it again.

    Raises ``TypeError`` or ``ValueError`` for an argument of the wrong kind.
    """

    failures: int = 5
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        _count("Breaker", "failures", self.failures, minimum=1)
        _number("Breaker", "cooldown", self.cooldown, positive=True)


@dataclass(frozen=True)
class SitePolicy:
    """What every request to one site obeys: *retry*, *rate* and *concurrency* (requests in flight).

    ``None`` turns a part off; the default retries (``Retry()``) with no rate or concurrency limit.
    *from_headers*: also obey the quota the site's responses state (``X-RateLimit-*``, the IETF
    ``RateLimit`` fields): when one says none is left, every request to the site waits for its reset,
    and a 403 or 429 saying so is retried then (if *retry* allows and the reset is within its
    ``max_wait``). Never more permissive than *rate*, which still holds. *breaker*: a ``Breaker``, off
    by default.
    Compared by value: equal policies for one origin are one policy.
    Raises ``TypeError`` or ``ValueError`` for an argument of the wrong kind.

        policy = SitePolicy(rate=RateLimit(5000, per=3600), concurrency=20)
    """

    retry: Retry | None = field(default_factory=Retry)
    rate: RateLimit | None = None
    concurrency: int | None = None
    from_headers: bool = False
    breaker: Breaker | None = None

    def __post_init__(self) -> None:
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise TypeError(f"SitePolicy(retry=...) must be a Retry or None, not {self.retry!r}")
        if self.rate is not None and not isinstance(self.rate, RateLimit):
            raise TypeError(
                "SitePolicy(rate=...) must be a RateLimit such as RateLimit(5000, per=3600), "
                f"not {self.rate!r}"
            )
        _count("SitePolicy", "concurrency", self.concurrency, minimum=1, none=True)
        if self.breaker is not None and not isinstance(self.breaker, Breaker):
            raise TypeError(f"SitePolicy(breaker=...) must be a Breaker or None, not {self.breaker!r}")
        if not isinstance(self.from_headers, bool):
            raise TypeError(f"SitePolicy(from_headers=...) must be True or False, not {self.from_headers!r}")
