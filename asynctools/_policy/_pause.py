"""A site that asked to wait: every request to it waits until then, spread so they do not all return at once.

A 429 or 503 response with ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, or (with
``SitePolicy(from_headers=True)``) a response saying the quota is spent, speaks for the site, not for the
one request it answers: from then on every attempt to the site on the loop, new
requests and retries alike, waits until the time asked, then a random share of the pause again (full
jitter, at most ``MAX_SPREAD`` seconds), so that the requests held back do not arrive in one instant and
fill the site's next window at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Final

from aiohttp import ClientError

__all__ = ("PAUSE_STATUSES", "SitePause", "SitePausedError")

#: The statuses whose ``Retry-After`` pauses the whole site (RFC 6585 4, RFC 9110 15.6.4).
PAUSE_STATUSES: Final = frozenset({429, 503})
#: The most a request held back by a pause waits past its end, so the site's next window is not flooded.
MAX_SPREAD: Final = 1.0
#: The longest pause one answer can put on a site: a server asking for more (a mistake, or a quota
#: read wrong) pauses it this long, not for ever.
MAX_PAUSE: Final = 3600.0


class SitePausedError(ClientError):
    """A request was held back by its site's pause (a 429 or 503 asked every request to wait), and the
    wait left is longer than the policy's ``Retry.max_wait``: it fails at once instead of sending.

    ``site``: the origin; ``seconds``: the wait that was left; ``cause``: what asked for it (``"429
    Retry-After"``, ``"X-RateLimit-Remaining: 0"``).
    """

    def __init__(self, site: str, seconds: float, cause: str, max_wait: float) -> None:
        self.site = site
        self.seconds = seconds
        self.cause = cause
        super().__init__(
            f"{site} asked to wait {seconds:.3g} s more ({cause}), over max_wait={max_wait!r}: the "
            f"request was not sent. Try again later, or allow a longer Retry(max_wait=...)"
        )


class SitePause:
    """When the requests of one site may go again, and what pauses it had (``pauses``, ``seconds``).

    Times are ``time.monotonic()``. Loop-bound like its ``SiteState``.
    """

    __slots__ = ("_cause", "pauses", "seconds", "until")

    def __init__(self) -> None:
        self.until = 0.0  # 0.0 while none was asked: one truth test on every attempt
        self._cause = ""
        self.pauses = 0
        self.seconds = 0.0  # how long the site was paused (asked to be, at most MAX_PAUSE a time), in all

    def ask(self, seconds: float, cause: str) -> None:
        """A response asked the site to wait *seconds* from now, saying so in *cause*."""
        if seconds <= 0:
            return
        now = time.monotonic()
        until = now + min(seconds, MAX_PAUSE)
        if until <= self.until:
            return  # already paused for as long
        if self.until <= now:
            self.pauses += 1  # a new pause; a longer one asked during a pause extends it
        self.seconds += until - max(now, self.until)
        self.until = until
        self._cause = cause

    async def wait(self, site: str, max_wait: float) -> None:
        """Wait until the site's pause is over, then a random share of it more; return at once if none.

        Raises ``SitePausedError`` when the pause left is longer than *max_wait*. Loops: a pause asked
        while waiting (a request the last one let go was refused again) is waited for as well.
        """
        while True:
            left = self.until - time.monotonic()
            if left <= 0:
                self.until = 0.0
                return
            if left > max_wait:
                raise SitePausedError(site, left, self._cause, max_wait)
            # Full jitter over the pause's own length, at most MAX_SPREAD: short pauses stay short.
            await asyncio.sleep(left + random.uniform(0.0, min(left, MAX_SPREAD)))  # load, not secrecy
