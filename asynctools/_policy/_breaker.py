"""A site's circuit breaker: after enough failures in a row, its requests fail at once for a while,
then one probe finds out whether it is back.

Closed, it counts consecutive failed attempts (a connection error, or a 5xx answer); at
``Breaker.failures`` it opens: for ``Breaker.cooldown`` seconds every request fails at once with
``CircuitOpenError``, nothing sent. Then it is half-open: one request goes (the probe) while the others
still fail at once; the probe's success closes it, its failure opens it again.
"""

from __future__ import annotations

import time

from aiohttp import ClientError

from ._config import Breaker

__all__ = ("CircuitBreaker", "CircuitOpenError")


class CircuitOpenError(ClientError):
    """A request was refused at once, nothing sent: its site's circuit breaker is open (the site failed
    ``Breaker.failures`` attempts in a row), or half-open with its probe in flight.

    ``site``: the origin; ``retry_in``: seconds until a probe may go (0 while one is in flight).
    """

    def __init__(self, site: str, retry_in: float, failures: int) -> None:
        self.site = site
        self.retry_in = retry_in
        state = (
            f"open (a probe may go in {retry_in:.3g} s)"
            if retry_in > 0
            else "half-open (its probe is in flight)"
        )
        super().__init__(
            f"{site} failed {failures} attempts in a row, so its circuit breaker is {state}: the request "
            f"was not sent (see SitePolicy(breaker=...))"
        )


class CircuitBreaker:
    """The breaker of one site on one loop (see the module); ``state`` is closed, open or half-open."""

    __slots__ = ("_config", "_failures", "_open_until", "_probing", "opened")

    def __init__(self, config: Breaker) -> None:
        self._config = config
        self._failures = 0  # consecutive failed attempts
        self._open_until = 0.0  # time.monotonic(); 0.0 while closed
        self._probing = False
        self.opened = 0  # times it opened

    @property
    def tripped(self) -> bool:
        """Whether it is open or half-open (a request now would be refused or be the probe)."""
        return bool(self._open_until)

    @property
    def state(self) -> str:
        if not self._open_until:
            return "closed"
        return "half-open" if time.monotonic() >= self._open_until else "open"

    def admit(self, site: str) -> None:
        """Let an attempt go, or raise ``CircuitOpenError``. Cheap while closed: one truth test."""
        if not self._open_until:
            return
        left = self._open_until - time.monotonic()
        if left > 0 or self._probing:
            raise CircuitOpenError(site, max(left, 0.0), self._config.failures)
        self._probing = True  # half-open: this attempt is the probe

    def succeeded(self) -> None:
        """An attempt got an answer below 500. One that left before the breaker opened closes nothing."""
        if self._open_until and not self._probing:
            return
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    def failed(self) -> None:
        """An attempt failed (a connection error or a 5xx answer)."""
        self._failures += 1
        if self._probing or (not self._open_until and self._failures >= self._config.failures):
            self._probing = False
            self._open_until = time.monotonic() + self._config.cooldown
            self.opened += 1

    def abandoned(self) -> None:
        """The attempt ended with neither outcome (cancelled): a probe lets another go."""
        self._probing = False
