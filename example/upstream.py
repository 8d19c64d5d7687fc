"""A local stand-in for the math API's ``GET /v4?expr=...``, served from the same process.

With a *flaky* share (0 to 1), it answers that share of the requests with an error a real API gives
under load, 429 Too Many Requests (``Retry-After: 0``) and 503 Service Unavailable in turn, so that the
retries of ``MathRequests``' site policy show. Which requests fail is deterministic: request *n* fails
when ``floor((n + 1) * flaky) > floor(n * flaky)`` (exactly every fifth one at 0.2), except that an
expression that has just failed is answered the next time it is asked: the stand-in is flaky, not
down, so a retry gets through.
"""

from __future__ import annotations

import math

from aiohttp import web

from .expression import ExpressionError, evaluate, format_number

__all__ = ("FlakySchedule", "make_upstream_app")


class FlakySchedule:
    """Which requests the stand-in fails, and with what: see the module docstring.

    Raises ``ValueError`` for a *share* that is not a number from 0 to 1.
    """

    def __init__(self, share: float) -> None:
        if not (isinstance(share, (int, float)) and not isinstance(share, bool) and 0 <= share <= 1):
            raise ValueError(f"the flaky share must be a number from 0 to 1, not {share!r}")
        self.share = float(share)
        self.requests = 0
        self.failures = 0
        self._just_failed: set[str] = set()

    def failure(self, expr: str) -> web.Response | None:
        """The error to answer the next request for *expr* with, or ``None`` to answer it properly."""
        n = self.requests
        self.requests += 1
        if expr in self._just_failed:
            self._just_failed.discard(expr)
            return None
        if math.floor((n + 1) * self.share) == math.floor(n * self.share):
            return None
        self._just_failed.add(expr)
        self.failures += 1
        if self.failures % 2:
            return web.Response(status=429, text="Error: too many requests", headers={"Retry-After": "0"})
        return web.Response(status=503, text="Error: service unavailable, try again")


FLAKY = web.AppKey("flaky", FlakySchedule)


async def v4(request: web.Request) -> web.Response:
    expr = request.query.get("expr")
    if expr is None:
        return web.Response(status=400, text="Error: missing query parameter expr")
    failure = request.app[FLAKY].failure(expr)
    if failure is not None:
        return failure
    try:
        return web.Response(text=format_number(evaluate(expr)))
    except ExpressionError as exc:
        return web.Response(status=400, text=f"Error: {exc}")


def make_upstream_app(flaky: float = 0.0) -> web.Application:
    """The stand-in; *flaky* is the share of requests answered 429 or 503 (``ValueError`` unless 0 to 1)."""
    app = web.Application()
    app[FLAKY] = FlakySchedule(flaky)
    app.router.add_get("/v4", v4)
    return app
