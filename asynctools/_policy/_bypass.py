"""No request to a site with a policy goes around it: the request class that refuses those that would.

aiohttp replaces a session's middlewares (the policy is one) with a request's own ``middlewares=``, so a
request passing them would skip the site's retries, rate limit and concurrency cap without a word. The
sessions of a registry with policies build their requests from ``policed_request_class``: the policy's
middleware marks the requests it applies to, and one to a site with a policy that reaches the
connection unmarked is refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import ClientRequest, ClientResponse
from aiohttp.connector import Connection
from yarl import URL

from .._redact import redact

__all__ = ("PolicyBypassError", "policed_request_class")


class PolicyBypassError(ValueError):
    """A request to a site with a ``SitePolicy`` passed ``middlewares=`` of its own, which would have
    replaced the policy (aiohttp runs a request's middlewares instead of its session's).

    Raised before the request is written (once its connection is open). Give the middlewares to the
    container or session instead (``middlewares=`` when it is made): there they run inside the policy,
    on every attempt.
    """

    def __init__(self, method: str, url: URL, site: str) -> None:
        self.method = method
        self.url = url
        self.site = site
        super().__init__(
            f"{method} {redact(str(url))} passes middlewares= of its own, which would replace the site "
            f"policy of {site} (aiohttp runs a request's middlewares instead of its session's, so the "
            f"retries, rate limit and concurrency cap would be skipped): give the middlewares to the "
            f"container or session when it is made (middlewares=...), where they run inside the policy"
        )


def policed_request_class(
    base: type[ClientRequest], site_of: Callable[[URL], str | None]
) -> type[ClientRequest]:
    """A subclass of *base* whose requests are refused when they reach a connection unmarked (their
    site's policy middleware never saw them) and ``site_of(url)`` names a site with a policy.

    The middleware marks a request by setting its ``policed`` attribute.
    """

    class PolicedRequest(base):  # type: ignore[valid-type,misc]  # a class made at run time
        policed = False

        # Not a coroutine of its own: it returns base's, so an attempt costs one Python call more.
        def send(self, conn: Connection) -> Coroutine[Any, Any, ClientResponse]:
            if not self.policed:
                site = site_of(self.url)
                if site is not None:
                    raise PolicyBypassError(self.method, self.url, site)
            return super().send(conn)  # type: ignore[no-any-return]

    PolicedRequest.__qualname__ = PolicedRequest.__name__ = f"Policed{base.__name__}"
    return PolicedRequest
