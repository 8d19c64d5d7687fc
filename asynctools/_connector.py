"""The connection pool that every session of one loop shares, unless it brings its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import ClientRequest, ClientSession, ClientTimeout, TCPConnector
from aiohttp.abc import AbstractCookieJar
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from ._keys import SessionKey
from ._metrics import ConnectionTracker, SiteMetrics

__all__ = ("SharedConnector",)

# Options that make ClientSession use, or build, a connector of its own.
_OWN_CONNECTOR: Final = frozenset({"connector", "connector_owner", "ssl_shutdown_timeout"})

# aiohttp's default is 100 connections per session; a session per site had that much per site and no
# total bound, so the shared pool keeps exactly that.
LIMIT_PER_HOST: Final = 100


class SharedConnector:
    """One ``TCPConnector`` lent (``connector_owner=False``) to every session built on one loop.

    A ``ClientSession`` left to itself owns a connector: closing the session, when it has been idle too
    long or is evicted, would close its warm connections, TLS sessions and DNS cache with it, and a site
    visited again would pay a handshake. Lent one connector, sessions are cheap to make and to close;
    connections live as long as aiohttp's keep-alive keeps them, as in one session held by hand. Cookies,
    headers and every other option stay per session; connections are keyed by host, port and TLS
    settings by aiohttp itself. Sessions given a ``connector=`` of the user's (or options that build
    one) keep theirs.

    Given *sites* (the site lookup of ``SessionRegistry(metrics=True)``), the shared connector is an
    ``ObservedConnector``: it counts its connections open, idle and closed per site. Connectors of the
    user's own are not observed.
    """

    def __init__(
        self, *, lend: bool = True, sites: Callable[[URL], SiteMetrics | None] | None = None
    ) -> None:
        # lend=False: every session owns its connector (a pool that will never close a shared one).
        self._lend = lend
        self._sites = sites
        self._connector: TCPConnector | None = None

    def session(
        self,
        key: SessionKey,
        cookie_jar: AbstractCookieJar | None = None,
        middlewares: tuple[Any, ...] = (),
        trace_configs: tuple[Any, ...] = (),
        request_class: type[ClientRequest] | None = None,
    ) -> ClientSession:
        """A new session for *key* (with *cookie_jar* and *request_class*, if given, *middlewares* before
        the user's own and *trace_configs* after theirs), on the shared connector if it may."""
        kwargs = key.build_kwargs()
        if request_class is not None:
            kwargs["request_class"] = request_class
        if cookie_jar is not None:
            kwargs["cookie_jar"] = cookie_jar
        if middlewares:
            kwargs["middlewares"] = (*middlewares, *(kwargs.get("middlewares") or ()))
        if trace_configs:
            kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), *trace_configs]
        if not self._lend or _OWN_CONNECTOR & kwargs.keys():
            return ClientSession(**kwargs)
        if self._connector is None or self._connector.closed:
            if self._sites is None:
                self._connector = TCPConnector(limit=0, limit_per_host=LIMIT_PER_HOST)
            else:
                tracker = ConnectionTracker(self._sites)
                self._connector = ObservedConnector(tracker, limit=0, limit_per_host=LIMIT_PER_HOST)
        return ClientSession(**kwargs, connector=self._connector, connector_owner=False)

    def close(self, sessions: list[ClientSession]) -> Callable[[], Awaitable[None]] | None:
        """Let go of the connector; return what closes it, and with it *sessions* (lent it).

        The sessions are kept until then: aiohttp calls a session it collects before its connector is
        closed "unclosed". (Closing such a session itself would let go of the connector at once, and
        aiohttp would fail the session's requests still in flight with an internal assertion instead
        of its "Connector is closed".)
        """
        connector, self._connector = self._connector, None
        if connector is None:
            return None

        async def close_connector() -> None:
            await connector.close()  # a second call (a close cancelled at exit, run again) does nothing
            sessions.clear()

        return close_connector

    def lends_to(self, session: ClientSession) -> bool:
        """Whether *session* runs on the shared connector (and so is closed when it is)."""
        return self._connector is not None and session.connector is self._connector

    def abandon(self, keep: Callable[[object], None]) -> None:
        """Let go of the connector without closing it: it belongs to a parent process (see ``fork``)."""
        keep(self._connector)
        self._connector = None


class ObservedConnector(TCPConnector):
    """A ``TCPConnector`` that reports every connection it hands out, and its own closing, to a
    ``ConnectionTracker`` (which counts connections open, idle and closed per site).

    aiohttp's tracing has no signal for a connection released or closed; the public ``connect()`` and
    ``close()`` of the connector, the ``Connection`` they hand out (``protocol``, ``add_callback()``) and
    the protocol's ``closed`` future give them. Takes ``TCPConnector``'s keyword arguments besides.
    """

    def __init__(self, tracker: ConnectionTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracker = tracker

    async def connect(self, req: ClientRequest, traces: list[Trace], timeout: ClientTimeout) -> Connection:
        """Get a connection from the pool or open one (``TCPConnector.connect``), and report it."""
        connection = await super().connect(req, traces, timeout)
        self.tracker.acquired(connection, req.url)
        return connection

    async def close(self, **kwargs: Any) -> None:
        """Close the connector and every connection (``TCPConnector.close``); report them all closed."""
        try:
            await super().close(**kwargs)
        finally:
            self.tracker.close_all()
