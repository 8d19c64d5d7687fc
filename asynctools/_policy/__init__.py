"""Site policies: retries, rate and concurrency limits per origin, applied as aiohttp client middlewares."""

from ._config import RateLimit, RedisLimit, Retry, SitePolicy
from ._rate import RedisLimitError
from ._retry import RetryError
from ._state import SiteState, SiteStats, Spelling, site_middleware

__all__ = (
    "RateLimit",
    "RedisLimit",
    "RedisLimitError",
    "Retry",
    "RetryError",
    "SitePolicy",
    "SiteState",
    "SiteStats",
    "Spelling",
    "site_middleware",
)
