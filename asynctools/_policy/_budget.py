"""A site's retry budget: retries at most a share of its requests, so a failing site is not asked
again and again by every one of them.

A token bucket, as Finagle's ``RetryBudget``: each request puts ``share`` of a token in, each retry
takes one out, and a floor of ``FLOOR_PER_SECOND`` tokens a second comes in on its own (up to ``CAP``),
so a site with little traffic may still retry its few failures. A request costs one addition; the clock
is read only when a retry asks.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ("CAP", "FLOOR_PER_SECOND", "RetryBudget")

#: Retries a second any site may make whatever its traffic (the budget's floor).
FLOOR_PER_SECOND: Final = 10.0
#: The most tokens a budget holds: what a quiet spell can save up for a burst of failures.
CAP: Final = 100.0


class RetryBudget:
    """At most *share* retries per request (over time), plus ``FLOOR_PER_SECOND`` retries a second."""

    __slots__ = ("_refilled", "refused", "share", "tokens")

    def __init__(self, share: float) -> None:
        self.share = share
        self.tokens = FLOOR_PER_SECOND  # a second's floor to start with
        self._refilled = time.monotonic()
        self.refused = 0  # retries the budget refused

    def deposit(self) -> None:
        """One request was made."""
        tokens = self.tokens + self.share
        self.tokens = tokens if tokens < CAP else CAP

    def withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` (and counted refused) when none is left."""
        now = time.monotonic()
        self.tokens = min(CAP, self.tokens + (now - self._refilled) * FLOOR_PER_SECOND)
        self._refilled = now
        if self.tokens < 1.0:
            self.refused += 1
            return False
        self.tokens -= 1.0
        return True
