"""MathRequests: the 0.1.3 README's container, written the way that README teaches."""

from __future__ import annotations

import aiohttp

import asynctools


class MathRequests(asynctools.AbstractSessionContainer):
    """Squares numbers through a mathjs-compatible API at *api_url* (``.../v4``)."""

    def __init__(
        self, api_url: str, *, registry: asynctools.SessionRegistry | None = None, timeout: float = 5.0
    ) -> None:
        super().__init__(
            api_url, registry=registry, raise_for_status=True, timeout=aiohttp.ClientTimeout(total=timeout)
        )
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
