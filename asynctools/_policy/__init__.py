"""Site policies: retries, rate and concurrency limits per origin, applied as aiohttp client middlewares."""

from ._breaker import CircuitOpenError
from ._bypass import PolicyBypassError, policed_request_class
from ._config import Breaker, RateLimit, RedisLimit, Retry, SitePolicy
from ._middleware import Spelling, site_middleware, state_lookup
from ._pause import SitePausedError
from ._rate import RedisLimitError
from ._retry import RetryError
from ._state import SiteState, SiteStats

__all__ = (
    "Breaker",
    "CircuitOpenError",
    "PolicyBypassError",
    "RateLimit",
    "RedisLimit",
    "RedisLimitError",
    "Retry",
    "RetryError",
    "SitePausedError",
    "SitePolicy",
    "SiteState",
    "SiteStats",
    "Spelling",
    "policed_request_class",
    "site_middleware",
    "state_lookup",
)
