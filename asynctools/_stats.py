"""Snapshots of what a registry holds on one event loop."""

from __future__ import annotations

from dataclasses import dataclass

from ._metrics import SiteMetricsSnapshot
from ._policy import SiteStats

__all__ = ("RegistryStats", "SessionStats")


@dataclass(frozen=True)
class SessionStats:
    """One session the registry holds: its origin, how many users hold it, and its state."""

    origin: str | None
    users: int
    idle: bool
    closed: bool


@dataclass(frozen=True)
class RegistryStats:
    """What a ``SessionRegistry`` holds on the running loop, as returned by ``registry.stats()``.

    ``open``: sessions not closed; ``in_use``: sessions with at least one user; ``idle``: open sessions
    with none, kept warm; ``created`` and ``acquired``: counts since the registry first served this loop
    or was last closed on it; ``sessions``: one ``SessionStats`` per session, with its number of users;
    ``sites``: the figures of each site with a ``SitePolicy`` (retries, rate-limit waits, give-ups);
    ``metrics``: with ``SessionRegistry(metrics=True)``, each site's traffic (all loops of the registry).
    """

    open: int
    in_use: int
    idle: int
    created: int
    acquired: int
    sessions: tuple[SessionStats, ...]
    sites: tuple[SiteStats, ...] = ()
    metrics: tuple[SiteMetricsSnapshot, ...] = ()
