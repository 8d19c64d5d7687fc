"""Pieces of the retry decision: which failures may be retried, how long to wait, what giving up says."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime

from aiohttp import (
    ClientConnectionError,
    ClientConnectorError,
    ClientRequest,
    ClientSSLError,
)
from aiohttp.payload import BytesPayload
from yarl import URL

from ._config import Retry
from ._quota import server_time

__all__ = ("RetryError", "backoff", "body_replayable", "retry_after", "retryable_error")


class RetryError(ClientConnectionError):
    """A request failed on every attempt its site's ``Retry`` allowed; the last failure is ``__cause__``.

    Raised only when the last attempt ended in a connection error (a retryable status as the last word
    is returned as the response). A ``ClientConnectionError``, so handlers written for one still catch
    it. ``attempts``: how many were made; ``failures``: why each failed, in order; ``waits``: the
    seconds waited before each retry; ``reason``: why no further attempt was made.
    """

    def __init__(
        self,
        method: str,
        url: URL,
        failures: tuple[str, ...],
        waits: tuple[float, ...],
        reason: str,
    ) -> None:
        self.method = method
        self.url = url
        self.attempts = len(failures)
        self.failures = failures
        self.waits = waits
        self.reason = reason
        steps = "; ".join(
            f"{n}: {failure}" + (f" (then waited {waits[n - 1]:.3g} s)" if n <= len(waits) else "")
            for n, failure in enumerate(failures, 1)
        )
        super().__init__(
            f"{method} {url} failed after {self.attempts} attempt{'s' * (self.attempts != 1)} "
            f"({reason}): {steps}"
        )


def retryable_error(exc: BaseException, method: str, retry: Retry) -> bool:
    """Whether *exc* from sending a request with *method* may be retried under *retry*.

    Timeouts (``ServerTimeoutError``, ``ConnectionTimeoutError``, any ``asyncio.TimeoutError``) are the
    user's own choice of how long to wait, and TLS errors do not heal by themselves: neither is retried.
    A connection that could not be opened sent nothing, so it is retried whatever the method.
    """
    if not isinstance(exc, ClientConnectionError) or isinstance(exc, (asyncio.TimeoutError, ClientSSLError)):
        return False
    return isinstance(exc, ClientConnectorError) or method in retry.methods


def body_replayable(req: ClientRequest) -> bool:
    """Whether *req*'s body can be sent again as it was: none at all, or held in memory.

    A file is read from where it stands (aiohttp 3.12 does not rewind it), and a stream or async
    generator is spent once sent: both would go out empty or cut short. Multipart bodies may hold either.
    """
    body = req.body
    return body == b"" or body is None or isinstance(body, BytesPayload)


def backoff(retry: Retry, n: int) -> float:
    """Seconds to wait before retry *n* (from 1): full jitter under an exponential cap.

    Random over the whole range, so clients that failed together do not come back together.
    """
    cap = min(retry.max_backoff, retry.backoff * 2.0 ** min(n - 1, 64))
    return random.uniform(0.0, cap)  # spreading load, not secrecy


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds a response asks to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP date).

    An HTTP date is measured from the response's ``Date`` (the server's clock), else from *now*
    (``time.time()``); a date in the past is 0. ``None`` when no header is given or none can be read
    (a malformed header is ignored, as if absent).
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value / 1000.0
    text = headers.get("Retry-After")
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():  # RFC 9110 10.2.3: delay-seconds is 1*DIGIT
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a "-0000" zone comes back naive
        when = when.replace(tzinfo=timezone.utc)
    try:
        # Against the server's own clock (its Date), so that the two clocks need not agree.
        return max(0.0, when.timestamp() - server_time(headers, now))
    except (OverflowError, ValueError):  # a date beyond what the platform's clock can hold
        return None
