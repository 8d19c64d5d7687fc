"""The client middleware that applies each request's site policy, and the lookup of a URL's site state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Final

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from yarl import URL

from .._keys import Origin, origin_of
from ._state import SiteState

__all__ = ("MAX_SPELLINGS", "Spelling", "site_middleware", "state_lookup")


# The key of a request's site as its URL spells it: (scheme, raw authority).
Spelling = tuple[str, str]


def site_middleware(
    known: MutableMapping[Spelling, SiteState | None], find: Callable[[Origin], SiteState | None]
) -> ClientMiddlewareType:
    """An aiohttp client middleware applying each request's site policy.

    A request's site is looked up in *known* by its URL's spelling (scheme and raw authority), then, for
    a spelling not in it, its origin (``(scheme, host, port)``, the host lower-cased, the port made
    explicit) is asked of ``find(origin)`` and the answer kept in *known* under the spelling; ``None``
    means a site without a policy, whose requests go straight to the next handler. *known* belongs to
    the caller, who clears it when the answers may change (a policy added, the states closed); it is
    cleared here too when it holds ``MAX_SPELLINGS``. Runs for every request and every redirect hop, so
    a redirect to another site obeys that site's policy. Raises what ``SiteState.request`` raises.

        session = aiohttp.ClientSession(middlewares=[site_middleware({}, lambda origin: state)])
    """
    get = known.get

    # A plain function returning the awaitable to await (what aiohttp's middleware type asks for), not
    # a coroutine of its own: every coroutine in the chain is created, and resumed at each of the
    # request's waits, once per request. The spelling is two cached properties of the URL read into a
    # tuple: taking the origin apart (host lower-cased, default port) costs as much again, and is done
    # once per spelling, not once per request.
    def site_policy(req: ClientRequest, handler: ClientHandlerType) -> Awaitable[ClientResponse]:
        url = req.url
        spelling = (url.scheme, url.raw_authority)
        state = get(spelling)
        if state is None:
            if spelling in known:  # a site without a policy
                return handler(req)
            state = _look_up(known, spelling, url.raw_host, url.port, find)
            if state is None:
                return handler(req)
        req.policed = True  # type: ignore[attr-defined]  # a policed_request_class request: let through
        return state._send(req, handler, state._retry)  # what state.request() awaits

    return site_policy


def state_lookup(
    known: MutableMapping[Spelling, SiteState | None], find: Callable[[Origin], SiteState | None]
) -> Callable[[URL], SiteState | None]:
    """The state of a URL's site as ``site_middleware`` with the same *known* and *find* finds it."""

    def state_of(url: URL) -> SiteState | None:
        spelling = (url.scheme, url.raw_authority)
        if spelling in known:
            return known[spelling]
        return _look_up(known, spelling, url.raw_host, url.port, find)

    return state_of


MAX_SPELLINGS: Final = 4096  # spellings kept by a site middleware: a crawler's origins come and go


def _look_up(
    known: MutableMapping[Spelling, SiteState | None],
    spelling: Spelling,
    host: str | None,
    port: int | None,
    find: Callable[[Origin], SiteState | None],
) -> SiteState | None:
    """The state of the site spelled *spelling* (``None``: no policy, or no host), kept in *known*."""
    state = None if host is None or port is None else find(origin_of(spelling[0], host, port))
    if len(known) >= MAX_SPELLINGS:
        known.clear()
    known[spelling] = state
    return state
