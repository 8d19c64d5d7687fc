"""What a server says of its own quota: the ``X-RateLimit-*`` headers and the IETF ``RateLimit`` fields.

Read for a site whose policy has ``from_headers=True``. The forms read, most specific first:

- the IETF draft's structured ``RateLimit`` field (draft 08 on): items such as ``"default";r=0;t=30``
  (``r`` remaining, ``t`` seconds to the reset), the most restrictive item counting;
- its earlier forms: ``RateLimit: limit=100, remaining=0, reset=30`` and the separate
  ``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` (seconds to the reset);
- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Used`` with ``X-RateLimit-Reset-After`` (seconds, as
  Discord sends it) or ``X-RateLimit-Reset``, which servers send either as a Unix time (GitHub, Discord)
  or as seconds from now (others): a value over a year of seconds is a Unix time, since no quota window
  is a year long and every Unix time since 1971 is larger; one over ``UNIX_MILLISECONDS_FROM`` is a Unix
  time in milliseconds (no Unix time in seconds is that large before the year 5000).

A Unix time is measured against the response's own ``Date`` (the server's clock), so the two clocks
need not agree. A field sent on several lines counts as one comma-joined line (RFC 9110 5.3), and where
values disagree the most restrictive counts. A header that cannot be read whole is ignored, as if absent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ("Quota", "read_quota", "server_time")

#: Reset values above this many seconds are Unix times, below it seconds from now.
UNIX_TIME_FROM: Final = 365 * 86400.0
#: Reset values above this are Unix times in milliseconds.
UNIX_MILLISECONDS_FROM: Final = 1e11

# A parameter's whole value: digits and a point, then the end of the parameter (not a prefix of "1e309").
_ITEM_PARAMETER: Final = re.compile(r";\s*([a-z]+)\s*=\s*([0-9.]+)\s*(?=;|$)")
_LEGACY_PARAMETER: Final = re.compile(r"\b(limit|remaining|reset)\s*=\s*([0-9.]+)\s*(?=,|;|$)")


@dataclass(frozen=True)
class Quota:
    """What a response said of the site's quota: *remaining* requests, *reset* in seconds from the
    response (``None``: not said), *limit* (``None``: not said)."""

    remaining: int
    reset: float | None
    limit: int | None
    header: str  # the header it was read from, for messages


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _seconds(reset: float | None, now: float) -> float | None:
    """A reset value as seconds from *now* (a Unix time): see ``UNIX_TIME_FROM``."""
    if reset is None:
        return None
    if reset > UNIX_MILLISECONDS_FROM:
        reset /= 1000.0
    return max(0.0, reset - now) if reset > UNIX_TIME_FROM else reset


def server_time(headers: Mapping[str, str], now: float) -> float:
    """The server's clock when it answered: the response's ``Date``, else *now* (``time.time()``)."""
    date = headers.get("Date")
    if date is not None:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return now


def _lines(headers: Mapping[str, str], name: str) -> list[str]:
    """Every line of field *name* (a multidict's ``getall``; a plain mapping's one value)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [] if value is None else [value]


def _least(headers: Mapping[str, str], name: str) -> float | None:
    """The least readable value among the lines of *name* (the most restrictive), ``None`` if none."""
    values = [v for v in map(_number, _lines(headers, name)) if v is not None]
    return min(values) if values else None


def _structured(field: str) -> Quota | None:
    """The most restrictive item of a structured ``RateLimit`` field (``"name";r=N;t=S``, ...)."""
    found: Quota | None = None
    for item in field.split(","):
        parameters = dict(_ITEM_PARAMETER.findall(item))
        remaining = _number(parameters.get("r"))
        if remaining is None:
            continue
        quota = Quota(int(remaining), _number(parameters.get("t")), None, "RateLimit")
        if found is None or quota.remaining < found.remaining:
            found = quota
    return found


def read_quota(headers: Mapping[str, str], now: float) -> Quota | None:
    """The quota *headers* state, ``None`` if they state none. *now*: ``time.time()``, for a Unix reset
    when the response has no ``Date``."""
    now = server_time(headers, now)
    lines = _lines(headers, "RateLimit")
    if lines:
        field = ", ".join(lines)
        if ";" in field:
            return _structured(field)
        legacy = dict(_LEGACY_PARAMETER.findall(field))
        remaining = _number(legacy.get("remaining"))
        if remaining is not None:
            limit = _number(legacy.get("limit"))
            return Quota(
                int(remaining),
                _number(legacy.get("reset")),
                None if limit is None else int(limit),
                "RateLimit",
            )
    for prefix in ("RateLimit-", "X-RateLimit-"):
        remaining = _least(headers, f"{prefix}Remaining")
        if remaining is None:
            continue
        limit = _least(headers, f"{prefix}Limit")
        after = _number(headers.get(f"{prefix}Reset-After"))
        reset = after if after is not None else _seconds(_number(headers.get(f"{prefix}Reset")), now)
        return Quota(int(remaining), reset, None if limit is None else int(limit), f"{prefix}Remaining")
    return None
