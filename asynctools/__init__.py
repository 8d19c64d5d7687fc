"""Shared, reference-counted aiohttp sessions for classes that wrap HTTP APIs.

Subclass ``AbstractSessionContainer``, decorate async methods with ``@attach_session``, and every
container that talks to the same site shares one ``ClientSession`` through a ``SessionRegistry``.
"""

from ._container import AbstractSessionContainer
from ._decorators import attach_named_session, attach_session
from ._metrics import SiteMetricsSnapshot
from ._policy import (
    Breaker,
    CircuitOpenError,
    PolicyBypassError,
    RateLimit,
    RedisLimit,
    RedisLimitError,
    Retry,
    RetryError,
    SitePausedError,
    SitePolicy,
    SiteStats,
)
from ._registry import SessionLease, SessionRegistry, default_registry
from ._request import ResponseContext
from ._stats import RegistryStats, SessionStats

__version__ = "1.0.0"

__all__ = (
    "AbstractSessionContainer",
    "Breaker",
    "CircuitOpenError",
    "PolicyBypassError",
    "RateLimit",
    "RedisLimit",
    "RedisLimitError",
    "RegistryStats",
    "ResponseContext",
    "Retry",
    "RetryError",
    "SessionLease",
    "SessionRegistry",
    "SessionStats",
    "SiteMetricsSnapshot",
    "SitePausedError",
    "SitePolicy",
    "SiteStats",
    "attach_named_session",
    "attach_session",
    "default_registry",
)
