"""MathRequests: the 0.1.3 README's container, written the way that README teaches, with a site policy."""

from __future__ import annotations

import aiohttp

import asynctools

#: What every request to the math API's site obeys, whichever container or session makes it: a busy
#: API answers 429 or 503 now and then, so try again up to 4 times (honouring ``Retry-After``, else
#: after a short random backoff), and stay under 500 requests a second, at most 100 back to back.
#: 1,000 squares asked at once take about 2 s at this rate: hence the socket timeouts below, not a total.
#: The stand-in's --flaky share can reach a fifth of all answers, retries included: the retry budget is
#: raised from its default (a fifth of the requests) so that every square still comes out.
MATHS_POLICY = asynctools.SitePolicy(
    retry=asynctools.Retry(
        attempts=4, statuses={429, 503}, backoff=0.05, max_backoff=0.5, max_wait=2.0, budget=0.5
    ),
    rate=asynctools.RateLimit(500, per=1.0, burst=50),
    concurrency=8,
)


class MathRequests(asynctools.AbstractSessionContainer):
    """Squares numbers through a mathjs-compatible API at *api_url* (``.../v4``)."""

    policy = MATHS_POLICY  # applies to the origin of *api_url*

    def __init__(
        self, api_url: str, *, registry: asynctools.SessionRegistry | None = None, timeout: float = 5.0
    ) -> None:
        # Per socket operation, not in total: a total would count the time a request waits its turn
        # under the site's rate and concurrency limits, and 1,000 squares asked at once would time out.
        # A math API that hangs still fails after *timeout* seconds.
        timeouts = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        super().__init__(api_url, registry=registry, raise_for_status=True, timeout=timeouts)
        self.api_url = api_url

    @asynctools.attach_session
    async def get_text(
        self, url: str, params: dict[str, str], session: aiohttp.ClientSession | None = None
    ) -> str:
        assert session is not None
        async with session.get(url, params=params) as response:
            return await response.text()

    async def get_square(self, value: str) -> str:
        # Parenthesised: in mathjs, as in maths, -3^2 is -9.
        return await self.get_text(self.api_url, params={"expr": f"({value})^2"})
