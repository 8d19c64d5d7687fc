"""A site's retry budget: retries at most a share of its requests, so a failing site is not asked
again and again by every one of them.

Counted over a sliding window of ``WINDOW`` seconds (two fixed windows, the older one weighted by how
much of it still overlaps, as a sliding-window counter does): a retry may go while the window's
retries stay within ``share`` of its requests, plus a floor of ``FLOOR_PER_SECOND`` retries a second
(a second's worth from the start), so a site with little traffic may still retry its few failures.
A request costs one addition; the clock is read only when a retry asks.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ("FLOOR_PER_SECOND", "WINDOW", "RetryBudget")

#: Retries a second any site may make whatever its traffic (the budget's floor).
FLOOR_PER_SECOND: Final = 10.0
#: The seconds over which requests and retries are compared.
WINDOW: Final = 10.0


class RetryBudget:
    """At most *share* retries per request, plus ``FLOOR_PER_SECOND`` retries a second, over ``WINDOW``."""

    __slots__ = ("_born", "_previous", "_started", "refused", "requests", "retries", "share")

    def __init__(self, share: float) -> None:
        self.share = share
        self.requests = 0  # in the current window
        self.retries = 0
        self._previous = (0, 0)  # (requests, retries) of the window before
        self._born = self._started = time.monotonic()
        self.refused = 0  # retries the budget refused

    def deposit(self) -> None:
        """One request was made."""
        self.requests += 1

    def withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` (and counted refused) when none is left."""
        now = time.monotonic()
        elapsed = now - self._started
        if elapsed >= WINDOW:
            windows = int(elapsed // WINDOW)
            self._previous = (self.requests, self.retries) if windows == 1 else (0, 0)
            self.requests = self.retries = 0
            self._started += windows * WINDOW
            elapsed = now - self._started
        overlap = 1.0 - elapsed / WINDOW  # the share of the previous window still in the sliding one
        requests = self.requests + self._previous[0] * overlap
        retries = self.retries + self._previous[1] * overlap
        floor = FLOOR_PER_SECOND * min(WINDOW, now - self._born + 1.0)
        if retries + 1 > self.share * requests + floor:
            self.refused += 1
            return False
        self.retries += 1
        return True
