"""AbstractSessionContainer: a base class for API wrappers that share sessions through a registry."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from aiohttp import ClientSession
from yarl import URL

from ._keys import SessionKey, make_key, parse_url
from ._lease import Lease
from ._policy import SitePolicy
from ._redact import redact, redact_repr
from ._registry import SessionRegistry, default_registry
from ._request import PooledRequest, ResponseContext

__all__ = ("AbstractSessionContainer", "not_initialised")

_get_running_loop = asyncio._get_running_loop  # the C accessor: None instead of an exception


def not_initialised(obj: object, what: str) -> TypeError:
    """The error for a container whose ``__init__`` never ran ``AbstractSessionContainer.__init__``."""
    return TypeError(
        f"{what}: {obj!r} is not an initialised AbstractSessionContainer; subclass "
        "AbstractSessionContainer and call super().__init__() in your __init__"
    )


def _site(
    raw_url: object, session_kwargs: dict[str, Any], isolate_cookies: bool
) -> tuple[URL | None, SessionKey, URL | None]:
    """A container's base URL, key and join base. Raises what ``parse_url`` and ``make_key`` raise."""
    url = parse_url(raw_url)
    key = make_key(url, session_kwargs, isolate_cookies=isolate_cookies)
    # Relative URLs are resolved under the base path: "https://h/v3" + "users" is "https://h/v3/users".
    # Built from the encoded text, so that "group%2Fproject" in the path stays one segment.
    join_base = None
    if url is not None:
        base = str(url.with_query(None).with_fragment(None))
        join_base = URL(base if base.endswith("/") else base + "/", encoded=True)
    return url, key, join_base


# The class keyword base_url's default: the base class's (None is a value: no site).
_INHERIT: Any = object()


# Least recently used out, not first come kept: a program that has seen 4,096 sites must not pay for
# every container of the next one (measured: ~15x the cost of a cached one).
@functools.lru_cache(maxsize=4096)
def _plain_site(raw_url: str | URL | None) -> tuple[URL | None, SessionKey, URL | None]:
    """``_site()`` of a base URL given without options, for the 4,096 base URLs used last.

    A container per request or per user is common: what its base URL alone gives is worked out once
    while it is in use (keys are immutable, equal ones interchangeable). Raises what ``_site`` raises
    (and caches nothing then).
    """
    return _site(raw_url, {}, False)


#: The attribute @attach_session sets on the functions it makes.
ATTACHED_MARK = "_asynctools_attach_session"


def not_an_instance_method(kind: str, qualname: str) -> str:
    """The message for ``@attach_session`` and a *kind* (``classmethod``, ``staticmethod``) together."""
    return (
        f"{qualname}() is a {kind} decorated with @attach_session: sessions are attached to container "
        f"instances, so @attach_session decorates instance methods only; make it an instance method "
        f"(or, inside the {kind}, make a container and call its decorated method)"
    )


class _Attachment:
    """The session a container holds on one loop (``async with`` / ``start_session()``), and how deep."""

    __slots__ = ("depth", "lease", "loop")

    def __init__(self, lease: Lease, loop: asyncio.AbstractEventLoop) -> None:
        self.lease = lease
        self.loop = loop
        self.depth = 1


def _attached_session(container: AbstractSessionContainer) -> ClientSession | None:
    """The session attached on the running loop, else the borrowed one (``session``'s slow path).

    Read outside any running loop, the latest attachment's session is shown, while its loop is open.
    """
    attachments = container._asynctools_attachments
    if attachments is not None:
        loop = _get_running_loop()
        if loop is None:
            latest = container._asynctools_latest
            if latest is not None and not latest.loop.is_closed():
                return latest.lease.entry.session
        else:
            attachment = attachments.get(loop)
            if attachment is not None:
                return attachment.lease.entry.session
    return container._asynctools_borrowed


def _session(container: AbstractSessionContainer) -> ClientSession | None:
    """The session of a decorated call: the latest attachment's when it is on the running loop (the hot
    path), else ``_attached_session``'s answer."""
    latest = container._asynctools_latest
    if latest is None:
        return container._asynctools_borrowed
    if latest.loop is _get_running_loop():
        return latest.lease.entry.session
    return _attached_session(container)


_C = TypeVar("_C", bound="AbstractSessionContainer")


def _removed_hook(name: str) -> TypeError:
    return TypeError(
        f"{name}() was removed in asynctools 1.0: containers of the same site and options share one "
        "session, so a hook that changes it would change it for all of them (and aiohttp 4 forbids "
        "setting attributes on ClientSession). Pass ClientSession options to the container instead "
        "(headers=, trace_configs=, middlewares=, raise_for_status=...), and put start or close logic "
        "in your own __aenter__/__aexit__ around super()'s"
    )


class _Done:
    """What ``start_session()`` and ``close_session()`` return.

    The work is done when they are called, so plain calls (as the 0.1.3 README wrote them) work;
    awaiting (as 0.1.3's ``async def`` versions required) waits for a session being closed, if any.
    Not a coroutine, so forgetting to await it warns about nothing and leaks nothing.
    """

    __slots__ = ("_closing",)

    def __init__(self, closing: asyncio.Task[None] | None = None) -> None:
        self._closing = closing

    def __await__(self) -> Generator[Any, None, None]:
        if self._closing is not None:
            yield from asyncio.shield(self._closing).__await__()


class AbstractSessionContainer:
    """Base class for objects that make HTTP requests through a shared ``aiohttp.ClientSession``.

    Subclass it and decorate async methods with ``@attach_session``: each call gets a ``session``
    argument. Inside ``async with container:`` (or between ``start_session()`` and
    ``close_session()``) every call uses one session acquired from the registry; outside, each call
    acquires one for its own duration. Containers with the same origin (from *base_url*) and the same
    *session_kwargs* share one session, and so one connection pool and one cookie jar.

    *base_url* may also be given for the class (a class keyword, as below, or a class attribute);
    relative URLs given to the request helpers (``get``, ``post``, ...) are resolved against it.
    *session_kwargs* are ``aiohttp.ClientSession``'s own (``headers=``, ``timeout=``,
    ``raise_for_status=``...). *registry* defaults to ``default_registry``. A *session* passed in is
    borrowed: used as it is, never closed or released. Constructing a container needs no event loop
    and creates no session.

    Sharing a session shares its cookie jar. With ``isolate_cookies=True`` the container gets a session
    and cookie jar of its own, on a connection pool the registry shares among every such container of
    the same site and options: cookies set for one never reach another's requests.

    Raises ``TypeError`` for a *base_url* that is not a str or URL, a *registry* that is not a
    ``SessionRegistry``, a *session* that is not a ``ClientSession`` or a keyword ``ClientSession`` does
    not accept; ``ValueError`` for a *base_url* without a host or with a scheme other than http, https,
    ws or wss, and for ``isolate_cookies=True`` with ``cookie_jar=``, ``cookies=`` or ``connector=``.

        class GitHub(AbstractSessionContainer, base_url="https://api.github.com"):
            @attach_session
            async def user(self, name, session=None):
                async with session.get(f"https://api.github.com/users/{name}") as resp:
                    return await resp.json()

        async with GitHub() as github:
            users = await asyncio.gather(*(github.user(n) for n in names))
    """

    #: The site's URL, a ``yarl.URL`` on every instance (``None``: no site of its own).
    base_url: URL | None = None
    #: A ``SitePolicy`` for ``base_url``'s origin, stated to the registry when a container is made.
    policy: ClassVar[SitePolicy | None] = None

    def __init_subclass__(cls, *, base_url: str | URL | None = _INHERIT, **kwargs: Any) -> None:
        """Take the class keyword ``base_url`` (checked now), and refuse 0.1.3's ``session_hook``.

        ``class GitHub(AbstractSessionContainer, base_url="https://api.github.com")`` is the typed
        spelling: a class attribute ``base_url = "https://..."`` works too, but type checkers then
        read a ``str`` where instances hold a ``URL`` (``base_url = URL("https://...")`` is fine).
        Raises what ``__init__`` raises for a bad *base_url*, and ``TypeError`` for one given both as
        a keyword and as a class attribute, for a ``session_hook`` (removed in 1.0), or for an
        ``@attach_session`` method wrapped in ``@classmethod`` or ``@staticmethod``.
        """
        super().__init_subclass__(**kwargs)
        if "session_hook" in vars(cls):
            raise _removed_hook("session_hook")
        for value in vars(cls).values():
            wrapped = isinstance(value, (classmethod, staticmethod))
            if wrapped and getattr(value.__func__, ATTACHED_MARK, False):
                # Called on the class, self.session would be the property object, handed over as a session.
                raise TypeError(not_an_instance_method(type(value).__name__, value.__func__.__qualname__))
        if base_url is not _INHERIT:  # None too: a subclass may have no site of its own
            if "base_url" in vars(cls):
                raise TypeError(
                    f"{cls.__name__} gives base_url twice, as a class keyword ({redact_repr(base_url)}) and "
                    f"as a class attribute ({redact_repr(vars(cls)['base_url'])}); keep one"
                )
            try:
                cls.base_url = parse_url(base_url)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"class {cls.__name__}(..., base_url=...): {exc}") from None

    def set_session_hook(self, hook: object) -> None:
        """Removed in 1.0 (see the docs' migration page); raises ``TypeError`` saying why."""
        raise _removed_hook("set_session_hook")

    def on_start(self, hook: object) -> None:
        """Removed in 1.0 (see the docs' migration page); raises ``TypeError`` saying why."""
        raise _removed_hook("on_start")

    def on_close(self, hook: object) -> None:
        """Removed in 1.0 (see the docs' migration page); raises ``TypeError`` saying why."""
        raise _removed_hook("on_close")

    # Class-level defaults keep the hot path to plain attribute reads.
    _asynctools_borrowed: ClientSession | None = None
    # One attachment per loop it is attached on: a session never leaves its loop.
    _asynctools_attachments: dict[asyncio.AbstractEventLoop, _Attachment] | None = None
    _asynctools_latest: _Attachment | None = None  # the one attached last, checked first

    def __init__(
        self,
        base_url: str | URL | None = None,
        *,
        registry: SessionRegistry | None = None,
        session: ClientSession | None = None,
        isolate_cookies: bool = False,
        **session_kwargs: Any,
    ) -> None:
        if registry is None:
            registry = default_registry
        elif not isinstance(registry, SessionRegistry):
            raise TypeError(f"registry must be a SessionRegistry, not {registry!r}")
        if session is not None and not isinstance(session, ClientSession):
            raise TypeError(f"session must be an aiohttp.ClientSession to borrow, or None, not {session!r}")
        raw_url = base_url if base_url is not None else type(self).base_url
        if session_kwargs or isolate_cookies or not isinstance(raw_url, (str, URL, type(None))):
            url, key, join_base = _site(raw_url, session_kwargs, isolate_cookies)
        else:
            url, key, join_base = _plain_site(raw_url)
        policy = type(self).policy
        if policy is not None:
            if url is None:
                raise ValueError(
                    f"{type(self).__name__}.policy applies to the site of base_url, and there is none: "
                    "set base_url, or state the policy with registry.set_policy(url, policy)"
                )
            registry.set_policy(url, policy)  # last: raises on a conflict before anything changed
        self.base_url = url
        self._asynctools_join_base = join_base
        self._asynctools_registry = registry
        self._asynctools_key = key
        self._asynctools_borrowed = session

    def __repr__(self) -> str:
        borrowed = self._asynctools_borrowed is not None
        state = "borrowed" if borrowed else "attached" if self.session else "detached"
        return f"<{type(self).__name__} base_url={redact(str(self.base_url))} session {state}>"

    if TYPE_CHECKING:

        @property
        def session(self) -> ClientSession | None: ...

    else:
        # The getter is _session itself: one call less on every decorated call.
        session = property(
            _session,
            doc="""The session every decorated call on the running loop uses (attached, borrowed) or ``None``.

        An attached session belongs to the loop it was attached on: read on another loop (another
        thread, a later ``asyncio.run()``, a forked child) or after the registry closed it, this is
        ``None`` and calls there acquire a session of their own.
        """,
        )

    @property
    def registry(self) -> SessionRegistry:
        """The registry this container acquires its sessions from."""
        try:
            return self._asynctools_registry
        except AttributeError:
            raise not_initialised(self, "registry") from None

    def _asynctools_lease(self, held: bool = False) -> Lease:
        """A lease for one call or request made without an attached session (on the running loop).

        *held*: kept by an object that may be dropped unreleased. Raises ``TypeError`` for a container
        that was never initialised, ``RuntimeError`` with no running loop.
        """
        try:
            registry, key = self._asynctools_registry, self._asynctools_key
        except AttributeError:
            raise not_initialised(self, "a call without a session") from None
        return registry._lease(key, held)

    # -- attaching ----------------------------------------------------------------------------------

    def _attach(self) -> None:
        """Attach a session on the running loop, or go one level deeper if one is attached here."""
        try:
            registry, key = self._asynctools_registry, self._asynctools_key
        except AttributeError:
            raise not_initialised(self, "attaching a session") from None
        if self._asynctools_borrowed is not None:
            return
        loop = asyncio.get_running_loop()
        attachments = self._asynctools_attachments
        if attachments is None:  # the usual first entry: nothing attached anywhere yet
            first = _Attachment(registry._lease(key, True), loop)
            self._asynctools_attachments = {loop: first}
            self._asynctools_latest = first
            return
        for other in [other for other in attachments if other.is_closed()]:
            attachments.pop(other).lease.release()  # its loop is gone: only counts down
        if self._asynctools_latest is not None and self._asynctools_latest.loop.is_closed():
            self._asynctools_latest = None
        attachment = attachments.get(loop)
        if attachment is None:
            attachment = attachments[loop] = _Attachment(registry._lease(key, True), loop)
        else:
            attachment.depth += 1
            if attachment.lease.session is None:  # the registry closed it (close(), the loop's shutdown)
                stale, attachment.lease = attachment.lease, registry._lease(key, True)
                stale.release()
        self._asynctools_latest = attachment

    def _detach(self) -> asyncio.Task[None] | None:
        """One level less on the running loop; the last one releases the session."""
        attachments = self._asynctools_attachments
        if attachments is None:  # never attached (the class default), or never initialised
            if not hasattr(self, "_asynctools_key"):
                raise not_initialised(self, "leaving a session")
            return None
        loop = asyncio.get_running_loop()
        attachment = attachments.get(loop)
        if attachment is None:
            return None
        attachment.depth -= 1
        if attachment.depth:
            return None
        del attachments[loop]
        if not attachments:  # the usual last exit: the next entry is a first one again
            self._asynctools_attachments = self._asynctools_latest = None
        elif self._asynctools_latest is attachment:
            self._asynctools_latest = next(reversed(attachments.values()))
        return attachment.lease.release()

    async def __aenter__(self: _C) -> _C:
        """Attach a session from the registry (nested entries share one) and return the container."""
        self._attach()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Release the session when the outermost ``async with`` ends."""
        closing = self._detach()
        if closing is not None:  # this closed it (idle_timeout=0, the loop shutting down): wait for it
            await asyncio.shield(closing)

    def start_session(self) -> Awaitable[None]:
        """Attach a session, as ``async with`` does; pair each call with one ``close_session()``.

        Works as a plain call or awaited. Raises ``RuntimeError`` outside a running event loop.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "start_session() needs a running event loop; call it from a coroutine"
            ) from None
        self._attach()
        return _Done()

    def close_session(self) -> Awaitable[None]:
        """Release the session taken by the matching ``start_session()``; nothing to do if none.

        Works as a plain call (the release happens at once) or awaited (also waits until the session
        is closed, when the release closes it). Raises ``RuntimeError`` outside a running event loop.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "close_session() releases the session attached on the running event loop; call it from "
                "a coroutine"
            ) from None
        return _Done(self._detach())

    # -- request helpers ----------------------------------------------------------------------------

    def request(self, method: str, url: str | URL, **kwargs: Any) -> ResponseContext:
        """Send a request as ``ClientSession.request`` does, through this container's session.

        *url* may be relative to ``base_url``. With no session attached, one is acquired for the
        request and released when the response is released, so use ``async with`` or read the body.
        """
        target = self._asynctools_resolve(url)
        session = self.session
        if session is not None:
            return session.request(method, target, **kwargs)
        return PooledRequest(lambda: self._asynctools_lease(held=True), method, target, kwargs)

    def get(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str | URL, **kwargs: Any) -> ResponseContext:
        """``request("OPTIONS", url, ...)``."""
        return self.request("OPTIONS", url, **kwargs)

    def _asynctools_resolve(self, url: str | URL) -> str | URL:
        try:
            base = self._asynctools_join_base
        except AttributeError:
            raise not_initialised(self, "a request") from None
        if base is None:
            return url
        target = URL(url) if isinstance(url, str) else url
        return target if target.is_absolute() else base.join(target)
