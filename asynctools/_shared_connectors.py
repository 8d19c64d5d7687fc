"""Registry-owned connectors, shared by the sessions of containers that isolate their cookies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import BaseConnector, ClientSession, TCPConnector
from aiohttp.abc import AbstractCookieJar

from ._keys import SessionKey

__all__ = ("SharedConnectors",)


class SharedConnectors:
    """One connector per site and options (``key.shared``), and how many sessions use each.

    A session made here has a cookie jar of its own but borrows the connector (``connector_owner=False``),
    so isolated containers keep their cookies apart and still reuse each other's connections. The last
    session out closes the connector, through *track* (the pool's way of running a close to the end).
    """

    def __init__(self, track: Callable[[Callable[[], Awaitable[None]]], object]) -> None:
        self._track = track
        self._slots: dict[SessionKey, tuple[BaseConnector, int]] = {}

    def session(self, key: SessionKey, cookie_jar: AbstractCookieJar) -> ClientSession:
        """A new session for *key* with *cookie_jar*, on *key*'s shared connector (made on first use)."""
        connector, users = self._slots.get(key.shared) or (TCPConnector(), 0)
        session = ClientSession(
            **key.build_kwargs(), connector=connector, connector_owner=False, cookie_jar=cookie_jar
        )
        self._slots[key.shared] = (connector, users + 1)
        return session

    def release(self, key: SessionKey) -> None:
        """One session less on *key*'s shared connector; the last one out closes it."""
        slot = self._slots.get(key.shared)
        if slot is None:
            return
        connector, users = slot
        if users > 1:
            self._slots[key.shared] = (connector, users - 1)
        else:
            del self._slots[key.shared]
            self._track(connector.close)

    def close_all(self) -> None:
        """Close every connector (their sessions must be closed already)."""
        for connector, _ in self._slots.values():
            self._track(connector.close)
        self._slots.clear()
